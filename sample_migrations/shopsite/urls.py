"""No views: the sample project exists for its migrations."""

urlpatterns: list = []
