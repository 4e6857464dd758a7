# The panel image: one image, three roles (web, worker, beat) chosen by the command.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 panel
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Build-time settings only for collectstatic/compilemessages; real ones come from the env.
# (DATABASE_URL only satisfies the production settings' refusal of SQLite; nothing connects.)
RUN DJANGO_DEBUG=0 DJANGO_SECRET_KEY=build-only DATABASE_URL=postgres://build@127.0.0.1/build \
    PANEL_ENCRYPTION_KEYS=$(python -c \
      "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())") \
    sh -c 'python manage.py collectstatic --noinput && (test ! -d locale || python manage.py compilemessages)'
USER panel
EXPOSE 8000
# Workers, threads, bind and access log: deploy/gunicorn.conf.py (the page benchmark loads it too).
CMD ["gunicorn", "--config", "deploy/gunicorn.conf.py", "panel.wsgi:application"]
