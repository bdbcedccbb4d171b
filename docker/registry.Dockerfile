# The schema registry of docker-compose.yml: Apicurio Registry 3.3 (Confluent-compatible API at
# /apis/ccompat/v7), the same finished Quarkus server the local stack runs (config/jars.yaml, group
# apicurio-registry: io.apicurio:apicurio-registry-app:3.3.3:tar.gz:all), unpacked with Maven's dependency
# plugin and run on Java 21. Build context: the repository root.
FROM maven:3.9.9-eclipse-temurin-21 AS fetch
ARG APICURIO_ARTIFACT=io.apicurio:apicurio-registry-app:3.3.3:tar.gz:all
RUN mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.6.1:unpack \
      -Dartifact=${APICURIO_ARTIFACT} -DoutputDirectory=/opt/apicurio-registry \
 && test -f /opt/apicurio-registry/quarkus-run.jar \
 && rm -rf /root/.m2

FROM eclipse-temurin:21-jre
# curl for the health check (the management port's /health/ready).
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 9998 --home-dir /opt/apicurio-registry registry \
 && mkdir -p /var/lib/apicurio && chown registry /var/lib/apicurio
COPY --from=fetch --chown=registry /opt/apicurio-registry /opt/apicurio-registry
WORKDIR /opt/apicurio-registry
USER registry
# Storage and ports come from the environment (APICURIO_*, QUARKUS_*): see docker-compose.yml.
ENV JAVA_OPTS_APPEND="-Xmx384m -XX:+UseSerialGC"
ENTRYPOINT ["sh", "-c", "exec java $JAVA_OPTS_APPEND -jar quarkus-run.jar"]
