from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]

    operations = [
        migrations.AddIndex(
            model_name="item",
            index=models.Index(fields=["created"], name="item_created_idx"),
        ),
    ]
