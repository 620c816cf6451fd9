from django.apps import AppConfig


class ServerTasksConfig(AppConfig):
    name = "servertasks"
    verbose_name = "Server tasks"
