# One image for every service; docker-compose.yml picks the service with the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PHR_VAR_DIR=/var/lib/phr PHR_HOST=0.0.0.0

# The Japanese TrueType font the portal embeds in a child's printable record (PHR_CONSENT_PDF_FONT).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-ipaexfont-gothic \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY phr_core ./phr_core
COPY launcher ./launcher
COPY idp ./idp
COPY phr_server ./phr_server
COPY consent ./consent
COPY portal ./portal
COPY connectors ./connectors
COPY federation ./federation
RUN pip install . && useradd --system --home-dir /var/lib/phr --create-home phr

USER phr
# Each service answers /healthz; compose overrides the port per service.
CMD ["phr", "--help"]
