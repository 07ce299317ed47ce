# PostgreSQL and Redis from Debian's packages, for the compose stack where no image registry can
# be reached (scripts/docker/host.yaml puts this image in place of postgres:16 and redis:7.2).
ARG BASE_IMAGE=mlops-base:bookworm
FROM ${BASE_IMAGE}

# No cluster made by the package and no service started during the build: the entrypoint makes
# the cluster on the data volume, as the official image does.
RUN mkdir -p /etc/postgresql-common \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
    && printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
    && apt-get update && apt-get install -y --no-install-recommends postgresql-15 redis-server \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/
WORKDIR /data
ENTRYPOINT ["postgres-entrypoint.sh"]
CMD ["postgres"]
# Fast shutdown, as the official image: SIGTERM would wait for every client to leave.
STOPSIGNAL SIGINT
