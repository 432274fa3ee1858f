"""The staff groups of SPEC §9 ("Support", "Billing admin"). The same sync
runs after every migrate (companies.apps), so this only makes sure the
groups exist as soon as the schema does."""

from django.db import migrations


def create_role_groups(apps, schema_editor):
    from companies.roles import create_all_permissions, sync_role_groups

    create_all_permissions(apps, using=schema_editor.connection.alias)
    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("companies", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_role_groups, migrations.RunPython.noop)]
