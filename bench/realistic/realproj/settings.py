"""A realistic project for the bench: popular pip-installable Django apps with long migration
histories (versions pinned in ``bench/requirements.txt``), as a content-and-shop site would have.
Only migrations matter here; nothing is served."""
import os

SECRET_KEY = "bench-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SITE_ID = 1
ROOT_URLCONF = "realproj.urls"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.sites",
    "django.contrib.redirects",
    "django.contrib.flatpages",
    "django.contrib.postgres",
    # wagtail
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.contrib.search_promotions",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelsearch",
    "taggit",
    # django CMS
    "cms",
    "menus",
    "treebeard",
    "sekizai",
    "filer",
    "easy_thumbnails",
    # accounts and APIs
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.mfa",
    "allauth.usersessions",
    "oauth2_provider",
    "rest_framework",
    "rest_framework.authtoken",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_hotp",
    "django_otp.plugins.otp_static",
    "django_otp.plugins.otp_email",
    "axes",
    # background work, mail, profiling
    "django_celery_beat",
    "django_q",
    "post_office",
    "silk",
    "migration_guard",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "axes.middleware.AxesMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
        "sekizai.context_processors.sekizai",
    ]},
}]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
CMS_CONFIRM_VERSION4 = True
CMS_TEMPLATES = [("base.html", "Base")]
LANGUAGES = [("en", "English")]
LANGUAGE_CODE = "en"
WAGTAIL_SITE_NAME = "bench"
WAGTAILADMIN_BASE_URL = "http://localhost"
STATIC_URL = "/static/"
Q_CLUSTER = {"name": "bench", "orm": "default", "timeout": 60, "retry": 120}
SILENCED_SYSTEM_CHECKS = ["treebeard.E001"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DB_NAME", "postgres"),
        "USER": os.environ.get("BENCH_DB_USER", "postgres"),
        "HOST": os.environ.get("BENCH_DB_HOST", ""),
        "PORT": os.environ.get("BENCH_DB_PORT", "5432"),
    }
}
