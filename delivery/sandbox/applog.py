"""The log lines the simulated Spring Boot containers write: startup, readiness, and a crash's stack trace."""

from __future__ import annotations

import time

from delivery.sandbox.behavior import split_image

JAVA_VERSION = "21.0.5"


def app_name(pod: dict, container: dict) -> str:
    """The pod's `app` label, else the container's name."""
    return ((pod.get("metadata") or {}).get("labels") or {}).get("app") or container.get("name", "app")


def main_class(app: str) -> str:
    """`TripServiceApplication` for `trip-service`."""
    return "".join(part.capitalize() for part in app.split("-") if part) + "Application"


def main_logger(app: str) -> str:
    """The abbreviated logger name of the application's main class."""
    return f"c.t.{app.split('-')[0]}.{main_class(app)}"


def spring_line(level: str, app: str, thread: str, logger: str, message: str) -> str:
    """One line in Spring Boot's default console format, stamped now."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    return f"{stamp} {level:>5} 1 --- [{app}] [{thread:>15}] {logger:<40} : {message}"


def profile_of(container: dict) -> str:
    """The Spring profile a container runs with (its SPRING_PROFILES_ACTIVE, else `default`)."""
    env = {e.get("name"): e.get("value") for e in container.get("env") or [] if isinstance(e, dict)}
    return env.get("SPRING_PROFILES_ACTIVE") or "default"


def startup_lines(app: str, image: str, profile: str) -> list[str]:
    """What a container writes while it starts, up to Tomcat listening."""
    main = main_class(app)
    version = (split_image(image)[1] or "latest").removeprefix("v")
    logger = main_logger(app)
    tomcat = "o.s.b.w.embedded.tomcat.TomcatWebServer"
    return [
        spring_line("INFO", app, "main", logger, f"Starting {main} v{version} using Java {JAVA_VERSION} with PID 1 "
                                                 "(/app/app.jar started by nonroot in /app)"),
        spring_line("INFO", app, "main", logger, f'The following 1 profile is active: "{profile}"'),
        spring_line("INFO", app, "main", tomcat, "Tomcat initialized with port 8080 (http)"),
        spring_line("INFO", app, "main", "com.zaxxer.hikari.HikariDataSource", "HikariPool-1 - Starting..."),
        spring_line("INFO", app, "main", "com.zaxxer.hikari.HikariDataSource", "HikariPool-1 - Start completed."),
        spring_line("INFO", app, "main", "o.s.b.a.e.web.EndpointLinksResolver",
                    "Exposing 3 endpoints beneath base path '/actuator'"),
        spring_line("INFO", app, "main", tomcat, "Tomcat started on port 8080 (http) with context path '/'"),
    ]


def started_line(app: str, seconds: float) -> str:
    """The line a container writes once its application context is up."""
    return spring_line("INFO", app, "main", main_logger(app),
                       f"Started {main_class(app)} in {seconds:.3f} seconds (process running for {seconds + 0.6:.3f})")


def crash_lines(app: str) -> list[str]:
    """The last lines of a container whose application fails and exits with code 1: the error and its stack trace."""
    package = f"com.tripgen.{app.split('-')[0]}"
    main = main_class(app)
    return [
        spring_line("ERROR", app, "main", "o.s.boot.SpringApplication", "Application run failed"),
        "java.lang.IllegalStateException: Failed to execute CommandLineRunner",
        "\tat org.springframework.boot.SpringApplication.lambda$callRunner$5(SpringApplication.java:791)",
        "\tat org.springframework.boot.SpringApplication.callRunners(SpringApplication.java:775)",
        "\tat org.springframework.boot.SpringApplication.run(SpringApplication.java:331)",
        f"\tat {package}.{main}.main({main}.java:12)",
        "Caused by: org.springframework.dao.DataAccessResourceFailureException: Unable to acquire JDBC Connection",
        f"\tat {package}.config.CacheWarmer.run(CacheWarmer.java:41)",
        "\tat org.springframework.boot.SpringApplication.lambda$callRunner$5(SpringApplication.java:788)",
        "\t... 3 common frames omitted",
        "Caused by: java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, "
        "request timed out after 30000ms (total=0, active=0, idle=0, waiting=0)",
        "\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:686)",
        "\tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:179)",
        "\t... 6 common frames omitted",
    ]
