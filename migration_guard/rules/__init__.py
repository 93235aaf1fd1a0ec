"""Stage *rules*: effects + sizes + context -> findings. Every rule is registered here, in one
explicit table; nothing is discovered by magic."""

from __future__ import annotations

from migration_guard.rules import (
    mg001_add_column_rewriting_table,
    mg002_add_index_non_concurrently,
    mg003_set_not_null_scanning_table,
    mg004_add_foreign_key_validating,
    mg005_add_check_constraint_validating,
    mg006_add_unique_constraint_building_index,
    mg007_alter_column_type_rewriting,
    mg008_lock_held_during_long_work,
    mg009_session_holding_conflicting_lock,
    mg010_blocking_lock_during_long_work,
    mg011_bulk_write_in_one_statement,
    mg012_add_not_null_column_without_default,
    mg013_concurrently_in_transaction,
    mg014_create_index_over_invalid_index,
    mg015_invalid_index_on_table,
    mg020_drop_column_in_use,
    mg021_drop_table_in_use,
    mg022_rename_column_in_use,
    mg023_rename_table_in_use,
    mg024_add_column_used_by_new_code,
    mg025_not_null_column_without_db_default,
    mg026_not_null_while_code_writes_null,
    mg027_narrow_column_type,
    mg030_json_field_without_gin_index,
    mg031_json_type_instead_of_jsonb,
    mg032_secret_in_plain_text_field,
    mg033_password_literal_in_sql,
    mg034_integer_key_that_overflows,
    mg035_column_type_to_avoid,
    mg036_foreign_key_without_index,
    mg037_index_duplicating_unique_index,
    mg038_btree_index_on_json_array_or_tsvector,
    mg039_btree_index_on_append_only_timestamp,
    mg901_unrenderable_migration,
    mg902_unparsable_statement,
    mg903_unmodelled_statement,
    mg904_render_state_mismatch,
    mg905_opaque_function_call,
    mg910_write_during_lint,
    mg911_cluster_wide_statement,
    mg912_statement_beyond_limits,
    mg920_depends_on_failed_migration,
    mg921_server_missing_feature,
)
from migration_guard.rules.base import MigrationContext, Rule, StatementContext, TransactionContext

__all__ = ["ALL_RULES", "MigrationContext", "Rule", "StatementContext", "TransactionContext", "get_rule", "rule_ids"]

ALL_RULES: tuple[Rule, ...] = (
    mg001_add_column_rewriting_table.RULE,
    mg002_add_index_non_concurrently.RULE,
    mg003_set_not_null_scanning_table.RULE,
    mg004_add_foreign_key_validating.RULE,
    mg005_add_check_constraint_validating.RULE,
    mg006_add_unique_constraint_building_index.RULE,
    mg007_alter_column_type_rewriting.RULE,
    mg008_lock_held_during_long_work.RULE,
    mg009_session_holding_conflicting_lock.RULE,
    mg010_blocking_lock_during_long_work.RULE,
    mg011_bulk_write_in_one_statement.RULE,
    mg012_add_not_null_column_without_default.RULE,
    mg013_concurrently_in_transaction.RULE,
    mg014_create_index_over_invalid_index.RULE,
    mg015_invalid_index_on_table.RULE,
    mg020_drop_column_in_use.RULE,
    mg021_drop_table_in_use.RULE,
    mg022_rename_column_in_use.RULE,
    mg023_rename_table_in_use.RULE,
    mg024_add_column_used_by_new_code.RULE,
    mg025_not_null_column_without_db_default.RULE,
    mg026_not_null_while_code_writes_null.RULE,
    mg027_narrow_column_type.RULE,
    mg030_json_field_without_gin_index.RULE,
    mg031_json_type_instead_of_jsonb.RULE,
    mg032_secret_in_plain_text_field.RULE,
    mg033_password_literal_in_sql.RULE,
    mg034_integer_key_that_overflows.RULE,
    mg035_column_type_to_avoid.RULE,
    mg036_foreign_key_without_index.RULE,
    mg037_index_duplicating_unique_index.RULE,
    mg038_btree_index_on_json_array_or_tsvector.RULE,
    mg039_btree_index_on_append_only_timestamp.RULE,
    mg901_unrenderable_migration.RULE,
    mg902_unparsable_statement.RULE,
    mg903_unmodelled_statement.RULE,
    mg904_render_state_mismatch.RULE,
    mg905_opaque_function_call.RULE,
    mg910_write_during_lint.RULE,
    mg911_cluster_wide_statement.RULE,
    mg912_statement_beyond_limits.RULE,
    mg920_depends_on_failed_migration.RULE,
    mg921_server_missing_feature.RULE,
)

_BY_ID = {rule.id: rule for rule in ALL_RULES}


def rule_ids() -> frozenset[str]:
    """Every rule id."""
    return frozenset(_BY_ID)


def get_rule(rule_id: str) -> Rule | None:
    """The rule with this id (case-insensitive), or None."""
    return _BY_ID.get(rule_id.upper())
