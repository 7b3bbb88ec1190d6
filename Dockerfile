# Tally in a container: python:3.11-slim, a user of its own, the data in a volume, no secrets in the image.
#   docker build -t tally .
#   docker run -d --name tally --env-file .env -v tally-data:/app/data tally
# (or `docker compose up -d`, see compose.yaml). The token comes from the environment at run time.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# The pinned tree first: a code change does not reinstall it.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --system --home-dir /app --shell /usr/sbin/nologin tally \
    && mkdir -p /app/data && chown tally:tally /app/data
USER tally

# The database (or, on PostgreSQL, XP a shutdown could not write) lives here: keep it in a volume.
VOLUME /app/data
# SIGTERM: Tally closes the gateway, saves pending XP and exits 0; give it SHUTDOWN_SAVE_SECONDS and more.
STOPSIGNAL SIGTERM
CMD ["python", "bot.py"]
