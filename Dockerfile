# PIM Rollout: API, admin UI and scheduler in one image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIM_ROLLOUT_DATABASE_URL=sqlite:////data/pim-rollout.db \
    PIM_ROLLOUT_SECRET_KEY_FILE=/data/pim-rollout.key \
    PIM_ROLLOUT_LOG_FORMAT=json

RUN groupadd --system pim && useradd --system --gid pim --home-dir /data --shell /usr/sbin/nologin pim

# The package is the whole product (plan templates, UI and comms templates, static files and
# migrations ship inside it), so it is installed like any wheel and the source is not kept.
COPY pyproject.toml README.md /tmp/pim-rollout/
COPY app /tmp/pim-rollout/app
RUN pip install --upgrade pip && pip install /tmp/pim-rollout && rm -rf /tmp/pim-rollout \
    && mkdir -p /data && chown pim:pim /data

WORKDIR /data

USER pim
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"

# `serve` runs the migrations before it starts listening.
CMD ["pim-rollout", "serve", "--host", "0.0.0.0", "--port", "8000"]
