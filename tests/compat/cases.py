"""The backward-compatibility harness's cases: a project history (the migrations applied, i.e. the code
running now), the pending migrations of a deploy, the deploy order, and the MG02x rules the gate
should raise. Every case starts from :data:`BASE`; ``tests/compat/harness.py`` runs them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BASE", "CASES", "Case"]

# The first migration of every case: the shop's models, with a field of each kind the checks look at.
BASE = """
migrations.CreateModel(name="Customer", fields=[
    ("id", models.BigAutoField(primary_key=True, serialize=False)),
    ("name", models.CharField(max_length=100)),
]),
migrations.CreateModel(name="Tag", fields=[
    ("id", models.BigAutoField(primary_key=True, serialize=False)),
    ("label", models.CharField(max_length=30)),
]),
migrations.CreateModel(name="Coupon", fields=[
    ("id", models.BigAutoField(primary_key=True, serialize=False)),
    ("code", models.CharField(max_length=20)),
]),
migrations.CreateModel(name="Order", fields=[
    ("id", models.BigAutoField(primary_key=True, serialize=False)),
    ("number", models.CharField(max_length=200)),
    ("note", models.TextField(null=True)),
    ("quantity", models.IntegerField()),
    ("big", models.BigIntegerField(default=0)),
    ("total", models.DecimalField(max_digits=10, decimal_places=2, default=0)),
    ("customer", models.ForeignKey("shop.customer", on_delete=models.CASCADE)),
    ("tags", models.ManyToManyField("shop.tag")),
]),
"""


@dataclass(frozen=True)
class Case:
    """One deploy: ``applied`` migrations after BASE (the running code), then ``pending`` ones."""

    name: str
    pending: tuple[str, ...]  # each a migration's operations (Python source)
    expect: frozenset[str] = frozenset()  # the MG02x rules the gate raises
    applied: tuple[str, ...] = ()
    order: str = "migrate_first"


def _case(name: str, pending: str | tuple[str, ...], expect: str = "", applied: str | tuple[str, ...] = (),
          order: str = "migrate_first") -> Case:
    pending = (pending,) if isinstance(pending, str) else pending
    applied = (applied,) if isinstance(applied, str) else applied
    return Case(name, pending, frozenset(expect.split()), applied, order)


def _state_only(*operations: str) -> str:
    return f"migrations.SeparateDatabaseAndState(state_operations=[{', '.join(operations)}]),"


def _database_only(*operations: str) -> str:
    return f"migrations.SeparateDatabaseAndState(database_operations=[{', '.join(operations)}]),"


def _sql(*statements: str) -> str:
    return f"migrations.RunSQL({list(statements)!r}, migrations.RunSQL.noop),"


CF = "code_first"

CASES: tuple[Case, ...] = (
    # -- drops (MG020, MG021) and their two-release pattern --------------------------------------
    _case("remove_nullable_field", 'migrations.RemoveField("order", "note"),', "MG020"),
    _case("remove_not_null_field", 'migrations.RemoveField("order", "quantity"),', "MG020"),
    _case("remove_foreign_key", 'migrations.RemoveField("order", "customer"),', "MG020"),
    _case("remove_many_to_many", 'migrations.RemoveField("order", "tags"),', "MG021"),
    _case("delete_model", 'migrations.DeleteModel("Coupon"),', "MG021"),
    _case("raw_drop_column", _sql("ALTER TABLE shop_order DROP COLUMN note"), "MG020"),
    _case("raw_drop_table", _sql("DROP TABLE shop_coupon"), "MG021"),
    _case("safe_drop_release_n", ('migrations.AlterField("order", "quantity", models.IntegerField(null=True)),'
                                  + _state_only('migrations.RemoveField("order", "quantity")'))),
    _case("safe_drop_release_n1", _sql('ALTER TABLE "shop_order" DROP COLUMN "note"'),
          applied=_state_only('migrations.RemoveField("order", "note")')),
    _case("safe_drop_table_release_n1", _sql('DROP TABLE "shop_coupon"'),
          applied=_state_only('migrations.DeleteModel("Coupon")')),
    # -- renames (MG022, MG023) --------------------------------------------------------------------
    _case("rename_field", 'migrations.RenameField("order", "note", "remark"),', "MG022"),
    _case("rename_foreign_key", 'migrations.RenameField("order", "customer", "client"),', "MG022"),
    _case("alter_db_column", 'migrations.AlterField("order", "note", models.TextField(null=True, db_column="remark")),',
          "MG022"),
    _case("safe_rename_field_keeping_column", _state_only(
        'migrations.RenameField("order", "note", "remark")',
        'migrations.AlterField("order", "remark", models.TextField(null=True, db_column="note"))')),
    _case("rename_model", 'migrations.RenameModel("Coupon", "Voucher"),', "MG023"),
    _case("rename_model_with_m2m", 'migrations.RenameModel("Order", "Purchase"),', "MG023"),
    _case("alter_model_table", 'migrations.AlterModelTable("coupon", "shop_coupons"),', "MG023"),
    _case("safe_rename_model_keeping_table", _state_only(
        'migrations.RenameModel("Coupon", "Voucher")', 'migrations.AlterModelTable("voucher", "shop_coupon")')),
    _case("raw_rename_column", _sql("ALTER TABLE shop_order RENAME COLUMN note TO remark"), "MG022"),
    _case("raw_rename_table", _sql("ALTER TABLE shop_coupon RENAME TO shop_voucher"), "MG023"),
    # -- NOT NULL without a database default (MG025), NULL written to NOT NULL (MG026) ------------
    _case("add_not_null_with_default",
          'migrations.AddField("order", "status", models.CharField(max_length=20, default="new")),', "MG025"),
    _case("add_not_null_with_db_default",
          'migrations.AddField("order", "status", models.CharField(max_length=20, db_default="new")),'),
    _case("add_nullable", 'migrations.AddField("order", "status", models.CharField(max_length=20, null=True)),'),
    _case("create_model", 'migrations.CreateModel(name="Invoice", fields=[("id", models.BigAutoField('
          'primary_key=True, serialize=False)), ("amount", models.IntegerField()), ("order", models.ForeignKey('
          '"shop.order", on_delete=models.CASCADE))]),'),
    _case("raw_add_not_null_drop_default", _sql(
        "ALTER TABLE shop_order ADD COLUMN status varchar(20) DEFAULT 'new' NOT NULL",
        "ALTER TABLE shop_order ALTER COLUMN status DROP DEFAULT"), "MG025"),
    _case("raw_add_not_null_keeping_default",
          _sql("ALTER TABLE shop_order ADD COLUMN status varchar(20) DEFAULT 'new' NOT NULL")),
    _case("set_not_null", 'migrations.AlterField("order", "note", models.TextField(default="")),', "MG026"),
    _case("raw_check_not_null_not_valid", _sql(
        "ALTER TABLE shop_order ADD CONSTRAINT note_not_null CHECK (note IS NOT NULL) NOT VALID"), "MG026"),
    _case("safe_set_not_null_release_n1", _sql('ALTER TABLE "shop_order" ALTER COLUMN "note" SET NOT NULL'),
          applied=_state_only('migrations.AlterField("order", "note", models.TextField(default=""))')),
    _case("drop_not_null", 'migrations.AlterField("order", "quantity", models.IntegerField(null=True)),'),
    # -- narrowing (MG027) ---------------------------------------------------------------------------
    _case("shorter_max_length", 'migrations.AlterField("order", "number", models.CharField(max_length=100)),', "MG027"),
    _case("longer_max_length", 'migrations.AlterField("order", "number", models.CharField(max_length=300)),'),
    _case("bigint_to_integer", 'migrations.AlterField("order", "big", models.IntegerField(default=0)),', "MG027"),
    _case("integer_to_bigint", 'migrations.AlterField("order", "quantity", models.BigIntegerField()),'),
    _case("text_to_varchar", 'migrations.AlterField("order", "note", models.CharField(max_length=50, null=True)),',
          "MG027"),
    _case("varchar_to_text", 'migrations.AlterField("order", "number", models.TextField()),'),
    _case("fewer_decimal_digits", 'migrations.AlterField("order", "total", models.DecimalField(max_digits=8, '
          'decimal_places=2, default=0)),', "MG027"),
    _case("more_decimal_digits", 'migrations.AlterField("order", "total", models.DecimalField(max_digits=12, '
          'decimal_places=2, default=0)),'),
    _case("integer_to_varchar", 'migrations.AlterField("order", "quantity", models.CharField(max_length=20)),',
          "MG027"),
    _case("raw_alter_type_shorter", _sql("ALTER TABLE shop_order ALTER COLUMN number TYPE varchar(50)"), "MG027"),
    _case("safe_shorter_release_n1", _sql('ALTER TABLE "shop_order" ALTER COLUMN "number" TYPE varchar(100)'),
          applied=_state_only('migrations.AlterField("order", "number", models.CharField(max_length=100))')),
    # -- code first: the new code meets the old schema ------------------------------------------------
    _case("cf_add_nullable", 'migrations.AddField("order", "status", models.CharField(max_length=20, null=True)),',
          "MG024", order=CF),
    _case("cf_add_not_null_with_default",
          'migrations.AddField("order", "status", models.CharField(max_length=20, default="new")),', "MG024",
          order=CF),
    _case("cf_add_many_to_many", 'migrations.AddField("order", "labels", models.ManyToManyField("shop.tag", '
          'related_name="labelled")),', "MG024", order=CF),
    _case("cf_create_model", 'migrations.CreateModel(name="Invoice", fields=[("id", models.BigAutoField('
          'primary_key=True, serialize=False)), ("amount", models.IntegerField()), ("order", models.ForeignKey('
          '"shop.order", on_delete=models.CASCADE))]),', "MG024", order=CF),
    _case("cf_safe_add_release_n", _database_only(
        'migrations.AddField("order", "status", models.CharField(max_length=20, null=True))'), order=CF),
    _case("cf_safe_add_release_n1", _state_only(
        'migrations.AddField("order", "status", models.CharField(max_length=20, null=True))'),
          applied=_database_only('migrations.AddField("order", "status", models.CharField(max_length=20, null=True))'),
          order=CF),
    _case("cf_remove_nullable_field", 'migrations.RemoveField("order", "note"),', order=CF),
    _case("cf_remove_not_null_field", 'migrations.RemoveField("order", "quantity"),', "MG025", order=CF),
    _case("cf_safe_drop_release_n1", _sql('ALTER TABLE "shop_order" DROP COLUMN "note"'),
          applied=_state_only('migrations.RemoveField("order", "note")'), order=CF),
    _case("cf_raw_drop_column_kept_in_model", _sql("ALTER TABLE shop_order DROP COLUMN note"), "MG020", order=CF),
    _case("cf_delete_model", 'migrations.DeleteModel("Coupon"),', order=CF),
    _case("cf_rename_field", 'migrations.RenameField("order", "note", "remark"),', "MG022", order=CF),
    _case("cf_rename_model", 'migrations.RenameModel("Coupon", "Voucher"),', "MG023", order=CF),
    _case("cf_drop_not_null", 'migrations.AlterField("order", "quantity", models.IntegerField(null=True)),', "MG026",
          order=CF),
    _case("cf_set_not_null", 'migrations.AlterField("order", "note", models.TextField(default="")),', order=CF),
    _case("cf_longer_max_length", 'migrations.AlterField("order", "number", models.CharField(max_length=300)),',
          "MG027", order=CF),
    _case("cf_shorter_max_length", 'migrations.AlterField("order", "number", models.CharField(max_length=100)),',
          order=CF),
    _case("cf_raw_alter_type_shorter", _sql("ALTER TABLE shop_order ALTER COLUMN number TYPE varchar(50)"),
          "MG027", order=CF),
)
