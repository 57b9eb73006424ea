-- The analyst user POST /api/sql runs as on a ClickHouse server. Run once as an admin, then
-- give Hutch the user in its analytics URL:
--   HUTCH_ANALYTICS=clickhouse://hutch:PW@host:8123/hutch?sql_user=hutch_analyst&sql_password=PW2
--
-- Hutch's own checks already keep each developer's queries to their rows (query/sql_scope.py):
-- bare table names resolve in a scope database, hutch_scope_<digest of the app set>, whose
-- views (SQL SECURITY DEFINER, made by Hutch's main user) show only that set's rows, and every
-- base table is filtered again with additional_table_filters. This user adds the engine's own
-- walls: it may read the scope databases and nothing else, and its profile caps what one
-- query may use, whatever Hutch sends.

CREATE SETTINGS PROFILE IF NOT EXISTS hutch_analyst SETTINGS
    max_execution_time = 10 MAX 60,
    max_memory_usage = 1073741824 MAX 4294967296,
    max_result_bytes = 67108864 MAX 268435456,
    max_concurrent_queries_for_user = 8,
    allow_introspection_functions = 0 CONST,
    allow_ddl = 0 CONST;

CREATE USER IF NOT EXISTS hutch_analyst
    IDENTIFIED WITH sha256_password BY 'change me'
    SETTINGS PROFILE 'hutch_analyst';

-- Wildcard grants (ClickHouse 24.10 and later): every scope database, present and future.
GRANT SELECT ON hutch_scope_*.* TO hutch_analyst;

-- And in the server's config.xml, so that system.* and information_schema.* need a grant too:
--   <access_control_improvements>
--     <select_from_system_db_requires_grant>true</select_from_system_db_requires_grant>
--     <select_from_information_schema_requires_grant>true</select_from_information_schema_requires_grant>
--   </access_control_improvements>
