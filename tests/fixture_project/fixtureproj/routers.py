"""A router for the several-databases tests: no inventory.Item table on 'analytics'."""


class KeepItemsOffAnalytics:
    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if db == "analytics" and model_name == "item":
            return False
        return None
