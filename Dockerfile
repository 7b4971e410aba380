# summitbot in a container: `summitbot webhook` on port 8080 (see docs/deployment.md).
FROM python:3.11-slim AS build
WORKDIR /src
# The locked versions first (a layer that changes only with the lock), then the project
# itself, built by the locked setuptools.
COPY requirements/app.txt ./requirements/app.txt
RUN python -m venv /opt/summitbot \
    && /opt/summitbot/bin/pip install --no-cache-dir --require-hashes -r requirements/app.txt
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY storage ./storage
COPY config ./config
RUN /opt/summitbot/bin/pip install --no-cache-dir --no-deps --no-build-isolation .

FROM python:3.11-slim
RUN useradd --system --create-home --home-dir /var/lib/summitbot summitbot
COPY --from=build /opt/summitbot /opt/summitbot
ENV PATH=/opt/summitbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json \
    WEBHOOK_HOST=0.0.0.0 \
    WEBHOOK_PORT=8080
USER summitbot
WORKDIR /var/lib/summitbot
EXPOSE 8080
# Liveness only; a load balancer should route by /readyz.
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["summitbot", "webhook"]
