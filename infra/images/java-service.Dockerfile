# syntax=docker/dockerfile:1
# The image of a TripGen service (user-, trip-, ai-, location-service: Java 21 / Spring Boot, port 8080),
# SPEC R-IMG: a Maven builder stage, then distroless Java 21 running as its non-root user.
# Copy it to the root of a service's repository (beside pom.xml) as `Dockerfile`, or build with
#   docker buildx build -f infra/images/java-service.Dockerfile -t acrtrpgenprod.azurecr.io/<service>:<tag> <service dir>
# infra/images/README.md explains each choice. Checked by hadolint and tests/deploy/test_dockerfile.py;
# no Docker engine builds it in this repository's CI.

# the bases by name, not through ARGs, so hadolint's registry check (.hadolint.yaml) sees them
FROM maven:3.9.9-eclipse-temurin-21 AS builder
WORKDIR /build
# dependencies first, in their own layer; ~/.m2 is a BuildKit cache mount, so no repository lands in a layer
COPY pom.xml ./
RUN --mount=type=cache,target=/root/.m2,sharing=locked \
    mvn -B -q dependency:go-offline
COPY src ./src
# the tests ran in the quality gates (R-GATE) on this commit; one jar is expected (cp fails on several)
RUN --mount=type=cache,target=/root/.m2,sharing=locked \
    mvn -B -DskipTests package \
    && cp target/*.jar /build/app.jar

FROM gcr.io/distroless/java21-debian12:nonroot AS runtime
WORKDIR /app
COPY --from=builder --chown=65532:65532 /build/app.jar /app/app.jar
# distroless's `nonroot` user, by number (uid and gid 65532): Kubernetes' runAsNonRoot can only verify a
# numeric USER, and hadolint (DL3066) asks for one; the Deployments set runAsUser 10001 over it
USER 65532:65532
EXPOSE 8080
# no HEALTHCHECK: distroless has no shell or curl; Kubernetes probes /actuator/health (infra/k8s-manifests)
# the heap follows the container's memory limit; an OutOfMemoryError ends the JVM so the pod restarts
ENTRYPOINT ["java", "-XX:MaxRAMPercentage=75.0", "-XX:InitialRAMPercentage=50.0", "-XX:+ExitOnOutOfMemoryError", "-jar", "/app/app.jar"]
