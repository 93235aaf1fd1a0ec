#!/usr/bin/env python
"""The django-tenants test project: ``python manage.py ...`` as a user runs it."""
import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tenantproj.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
