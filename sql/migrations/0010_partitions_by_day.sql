-- Storage bounded (issue 17): the jobs' time-series tables are partitioned by day (PostgreSQL declarative range
-- partitioning on their time column), so that retention drops whole partitions instead of deleting rows.
--
-- Each table keeps its name, columns, checks, primary key (which holds the time column, as PostgreSQL requires)
-- and indexes; the dashboards' views are re-created on top. A DEFAULT partition takes any row no day partition
-- covers (a replay of old data, a day nobody created ahead), so an insert never fails for want of a partition.
-- streampulse_maintain_partitions (below; `streampulse stack up` and `stack retention` call it) creates the
-- day partitions ahead of time and drops those past the retention.

DO $$
DECLARE
    names constant text[] := ARRAY['keyword_window_counts', 'window_posts', 'trends', 'late_posts', 'volume_windows',
                                   'volume_anomalies', 'rejected_posts', 'volume_outages'];
    columns constant text[] := ARRAY['window_start', 'window_start', 'window_end', 'window_start', 'window_start',
                                     'window_start', 'window_start', 'outage_start'];
    views text[] := '{}';
    definitions text[] := '{}';
    indexes text[];
    t text;
    pk text;
    item record;
BEGIN
    -- The views that read these tables, in creation order: dropped now, re-created on the new tables.
    FOR item IN
        SELECT DISTINCT v.oid, v.relname FROM pg_depend d
        JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
        WHERE v.relkind = 'v' AND v.oid <> d.refobjid
          AND d.refobjid IN (SELECT to_regclass(format('public.%I', x)) FROM unnest(names) AS x)
        ORDER BY v.oid
    LOOP
        views := views || item.relname::text;
        definitions := definitions || pg_get_viewdef(item.oid);
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(views, 1), 0) LOOP
        EXECUTE format('DROP VIEW IF EXISTS %I', views[i]);
    END LOOP;

    FOR i IN 1 .. array_length(names, 1) LOOP
        t := names[i];
        SELECT string_agg(format('%I', a.attname), ', ' ORDER BY k.n) INTO pk
        FROM pg_index x CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
        JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
        WHERE x.indrelid = t::regclass AND x.indisprimary;
        indexes := '{}';
        FOR item IN SELECT c.relname, pg_get_indexdef(c.oid) AS definition FROM pg_index x
                    JOIN pg_class c ON c.oid = x.indexrelid WHERE x.indrelid = t::regclass AND NOT x.indisprimary
        LOOP
            indexes := indexes || item.definition;
            EXECUTE format('DROP INDEX %I', item.relname);
        END LOOP;
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_unpartitioned');
        EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', t || '_unpartitioned', t || '_pkey',
                       t || '_unpartitioned_pkey');
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (%I)',
                       t, t || '_unpartitioned', columns[i]);
        EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (%s)', t, pk);
        EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', t || '_default', t);
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', t, t || '_unpartitioned');
        EXECUTE format('DROP TABLE %I', t || '_unpartitioned');
        FOR j IN 1 .. coalesce(array_length(indexes, 1), 0) LOOP
            EXECUTE indexes[j];
        END LOOP;
    END LOOP;

    FOR i IN 1 .. coalesce(array_length(views, 1), 0) LOOP
        EXECUTE format('CREATE VIEW %I AS %s', views[i], definitions[i]);
    END LOOP;
END
$$;

-- Create the day partitions from the day before `today` to `days_ahead` days after it (moving any rows the
-- DEFAULT partition holds for such a day into it), and drop the day partitions that ended `keep_days` or more
-- days before `today`. Returns what it did, one row per partition.
CREATE FUNCTION streampulse_maintain_partitions(today date, days_ahead integer, keep_days integer)
RETURNS TABLE (action text, partition_name text)
LANGUAGE plpgsql AS $$
DECLARE
    parent record;
    child record;
    day date;
    name text;
    col text;
BEGIN
    FOR parent IN SELECT c.oid, c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
                  WHERE c.relnamespace = 'public'::regnamespace ORDER BY c.relname
    LOOP
        SELECT a.attname INTO col FROM pg_partitioned_table p
        JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
        WHERE p.partrelid = parent.oid;
        FOR day IN SELECT generate_series(today - 1, today + days_ahead, interval '1 day')::date LOOP
            name := parent.relname || '_' || to_char(day, 'YYYYMMDD');
            CONTINUE WHEN to_regclass(format('public.%I', name)) IS NOT NULL;
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name,
                           parent.relname);
            EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= %L AND %I < %L RETURNING *) '
                           'INSERT INTO %I SELECT * FROM moved', parent.relname || '_default', col, day, col,
                           day + 1, name);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent.relname,
                           name, day, day + 1);
            action := 'created';
            partition_name := name;
            RETURN NEXT;
        END LOOP;
        FOR child IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                     WHERE i.inhparent = parent.oid AND c.relname ~ ('^' || parent.relname || '_[0-9]{8}$')
                     ORDER BY c.relname
        LOOP
            day := to_date(right(child.relname, 8), 'YYYYMMDD');
            CONTINUE WHEN day + 1 > today - keep_days;
            EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', parent.relname, child.relname);
            EXECUTE format('DROP TABLE %I', child.relname);
            action := 'dropped';
            partition_name := child.relname;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END
$$;
