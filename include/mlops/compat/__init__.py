"""Where the project leans on what a tool does not publish, one module a tool.

Each holds the only use of a private name of its tool, says why no public way exists, and has a
test (tests/include/mlops/compat) that fails naming the change when an upgrade moves or changes it.
"""
