-- The dashboard role reads, and nothing else, whatever a Superset user types (issue 17). Table grants already
-- keep it from writing rows; these close what every role may do by default:
--   temporary tables (TEMP is granted to PUBLIC on every database), large objects (lo_from_bytea and friends
--   write to pg_largeobject, which no table grant covers), and queries that hold the database for minutes.
-- The session settings apply at its next login.
REVOKE TEMPORARY ON DATABASE "${database}" FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION lo_from_bytea(oid, bytea), lo_create(oid), lo_creat(integer), lo_put(oid, bigint, bytea),
    lo_import(text), lo_import(text, oid), lo_export(oid, text), lo_unlink(oid) FROM PUBLIC;
ALTER ROLE "${reader_role}" SET default_transaction_read_only = on;
ALTER ROLE "${reader_role}" SET statement_timeout = '30s';
ALTER ROLE "${reader_role}" SET idle_in_transaction_session_timeout = '60s';
