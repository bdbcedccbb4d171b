-- Who may do what. The roles themselves (with their generated passwords) are created by
-- `streampulse stack up` before migrations run; the dollar-brace placeholders are the configured names.
--   writer: the jobs and connectors (read + write rows, no DDL)
--   reader: dashboards (Superset) and people (read only)
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE "${database}" TO "${writer_role}", "${reader_role}";
GRANT USAGE ON SCHEMA public TO "${writer_role}", "${reader_role}";

-- Tables made by later migrations get the same grants without repeating them in each file.
ALTER DEFAULT PRIVILEGES FOR ROLE "${admin_role}" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "${writer_role}";
ALTER DEFAULT PRIVILEGES FOR ROLE "${admin_role}" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO "${writer_role}";
ALTER DEFAULT PRIVILEGES FOR ROLE "${admin_role}" IN SCHEMA public
    GRANT SELECT ON TABLES TO "${reader_role}";
