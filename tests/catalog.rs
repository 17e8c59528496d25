//! `pg_catalog` and `information_schema` through a real PostgreSQL client: the rows psql,
//! JDBC and ODBC read to browse a schema, the functions they call, reg* casts, and the
//! RowDescription (declared types, modifiers, table oids) of a query on a table. Oids must
//! survive a restart.

mod common;

use common::{TestServer, exec, fails, sqlstate, text_rows as rows};
use tokio_postgres::types::Type;

const SCHEMA: &str = "
    CREATE TABLE sensors (id integer PRIMARY KEY, name varchar(64) NOT NULL, price numeric(6,2),
                          active boolean NOT NULL DEFAULT true);
    CREATE TABLE readings (sensor_id integer NOT NULL, ts timestamp NOT NULL, v double precision,
                           PRIMARY KEY (sensor_id, ts));
    CREATE INDEX readings_ts_idx ON readings (ts);
    CREATE VIEW hot AS SELECT sensor_id, v FROM readings WHERE v > 30;
";

#[tokio::test]
async fn relations_columns_and_keys_describe_the_schema() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(&c, SCHEMA).await;

    let relations = rows(
        &c,
        "SELECT c.relname, c.relkind FROM pg_catalog.pg_class c
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' ORDER BY 1",
    )
    .await;
    assert_eq!(
        relations,
        [
            "hot|v",
            "readings|r",
            "readings_pkey|i",
            "readings_ts_idx|i",
            "sensors|r",
            "sensors_pkey|i"
        ]
    );

    let columns = rows(
        &c,
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
                (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d
                 WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef)
         FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = 'sensors'::regclass AND a.attnum > 0 ORDER BY a.attnum",
    )
    .await;
    assert_eq!(
        columns,
        [
            "id|integer|t|NULL",
            "name|character varying(64)|t|NULL",
            "price|numeric(6,2)|f|NULL",
            "active|boolean|t|true"
        ]
    );

    let indexes = rows(
        &c,
        "SELECT c2.relname, i.indkey, i.indkey[1], pg_catalog.pg_get_indexdef(i.indexrelid),
                pg_catalog.pg_get_constraintdef(con.oid), con.contype
         FROM pg_catalog.pg_index i
         JOIN pg_catalog.pg_class c2 ON c2.oid = i.indexrelid
         LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid
         WHERE i.indrelid = 'public.readings'::regclass ORDER BY 1",
    )
    .await;
    assert_eq!(
        indexes,
        [
            "readings_pkey|1 2|2|CREATE UNIQUE INDEX readings_pkey ON public.readings USING btree (sensor_id, ts)|PRIMARY KEY (sensor_id, ts)|p",
            "readings_ts_idx|2|NULL|CREATE INDEX readings_ts_idx ON public.readings USING btree (ts)|NULL|NULL"
        ]
    );

    let info = rows(
        &c,
        "SELECT column_name, data_type, udt_name, character_maximum_length, is_nullable
         FROM information_schema.columns WHERE table_name = 'sensors' ORDER BY ordinal_position",
    )
    .await;
    assert_eq!(
        info,
        [
            "id|integer|int4|NULL|NO",
            "name|character varying|varchar|64|NO",
            "price|numeric|numeric|NULL|YES",
            "active|boolean|bool|NULL|NO"
        ]
    );
    let keys = rows(
        &c,
        "SELECT tc.constraint_type, k.column_name, k.ordinal_position
         FROM information_schema.table_constraints tc
         JOIN information_schema.key_column_usage k ON k.constraint_name = tc.constraint_name
         WHERE tc.table_name = 'readings' ORDER BY 3",
    )
    .await;
    assert_eq!(keys, ["PRIMARY KEY|sensor_id|1", "PRIMARY KEY|ts|2"]);
    let view = rows(
        &c,
        "SELECT table_name, table_type FROM information_schema.tables ORDER BY 1",
    )
    .await;
    assert_eq!(
        view,
        ["hot|VIEW", "readings|BASE TABLE", "sensors|BASE TABLE"]
    );
}

#[tokio::test]
async fn reg_casts_functions_and_row_descriptions() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(&c, SCHEMA).await;

    let oid = rows(&c, "SELECT 'sensors'::regclass::oid").await;
    assert_eq!(
        rows(&c, &format!("SELECT {}::regclass::text", oid[0])).await,
        ["sensors"]
    );
    assert_eq!(
        rows(
            &c,
            "SELECT c.oid::regclass FROM pg_class c WHERE relname = 'hot'"
        )
        .await,
        ["hot"]
    );
    assert_eq!(
        rows(
            &c,
            "SELECT 'int4'::regtype::text, to_regtype('varchar'), to_regclass('nope')"
        )
        .await,
        ["integer|1043|NULL"]
    );
    assert_eq!(
        rows(
            &c,
            "SELECT 'pg_class'::regclass::oid, 'pg_catalog.pg_type'::regclass::text"
        )
        .await,
        ["1259|pg_type"]
    );
    let missing = c
        .simple_query("SELECT 'nope'::regclass")
        .await
        .expect_err("unknown relation");
    assert_eq!(sqlstate(&missing), Some("42P01"));
    assert_eq!(
        rows(&c, "SELECT pg_get_userbyid(10) = current_user, pg_get_viewdef('hot'::regclass) LIKE '%readings%'").await,
        ["t|t"]
    );
    assert_eq!(
        rows(
            &c,
            "SELECT count(*) > 0 FROM pg_catalog.pg_type WHERE typname = 'int4'"
        )
        .await,
        ["t"]
    );
    assert_eq!(
        rows(
            &c,
            "SELECT name, setting FROM pg_settings WHERE name = 'application_name'"
        )
        .await,
        ["application_name|"]
    );
    assert_eq!(
        rows(
            &c,
            "SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        )
        .await,
        ["1"]
    );

    // The RowDescription names the declared type, its modifier and the source column.
    let statement = c
        .prepare("SELECT name, price, id FROM sensors")
        .await
        .expect("prepare");
    let types: Vec<Type> = statement
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    assert_eq!(types, [Type::VARCHAR, Type::NUMERIC, Type::INT4]);
    let table = statement.columns()[0].table_oid();
    assert_eq!(table.map(|t| t.to_string()), Some(oid[0].clone()));
    assert_eq!(statement.columns()[1].column_id(), Some(3));
}

#[tokio::test]
async fn oids_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let query = "SELECT c.relname, c.oid FROM pg_class c ORDER BY 1";
    let before = {
        let mut server = TestServer::start_in(&data, &[]);
        let c = server.connect().await;
        exec(&c, SCHEMA).await;
        let before = rows(&c, query).await;
        server.terminate();
        before
    };
    let server = TestServer::start_in(&data, &[]);
    let c = server.connect().await;
    assert_eq!(rows(&c, query).await, before);
}

/// DataGrip's incremental introspection: it keeps the transaction id of its last reading and
/// re-reads the catalog rows whose `xmin` is not older, so every change after that reading,
/// also one made before a restart it did not see, must make rows newer.
#[tokio::test]
async fn catalog_xmin_tells_which_objects_changed_since_a_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let changed_since = |txid: &str| {
        format!(
            "SELECT count(*) FROM pg_catalog.pg_class T WHERE T.relnamespace = 2200 \
             AND pg_catalog.age(T.xmin) <= coalesce(nullif(greatest( \
                 pg_catalog.age('{txid}'::varchar::xid), -1), -1), 2147483647)"
        )
    };
    let mut server = TestServer::start_in(&data, &[]);
    let c = server.connect().await;
    exec(&c, SCHEMA).await;
    let reading = rows(&c, "SELECT txid_current()").await.remove(0);
    assert_eq!(rows(&c, &changed_since(&reading)).await, ["0"]);
    assert_eq!(
        rows(
            &c,
            "SELECT N.xmin::varchar::bigint > 0, xmin = N.xmin FROM pg_namespace N \
             WHERE nspname = 'public'"
        )
        .await,
        ["t|t"]
    );
    exec(&c, "CREATE TABLE later (id int PRIMARY KEY)").await;
    let total = rows(
        &c,
        "SELECT count(*) FROM pg_class WHERE relnamespace = 2200",
    )
    .await;
    assert_eq!(rows(&c, &changed_since(&reading)).await, total);
    let reading = rows(&c, "SELECT txid_current()").await.remove(0);
    server.terminate();

    let server = TestServer::start_in(&data, &[]);
    let c = server.connect().await;
    assert!(
        rows(&c, "SELECT txid_current()").await[0]
            .parse::<u64>()
            .unwrap()
            > reading.parse::<u64>().unwrap(),
        "transaction ids keep growing across a restart"
    );
    assert_eq!(rows(&c, &changed_since(&reading)).await, total);
    // User tables have no system columns.
    fails(&c, "SELECT xmin FROM later", "42703").await;
}

#[tokio::test]
async fn queries_drivers_send_that_datafusion_plans_only_after_rewriting() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(&c, SCHEMA).await;

    // pgjdbc's getPrimaryKeys: _pg_expandarray over indkey, then (keys).x / (keys).n.
    let keys = rows(
        &c,
        "SELECT a.attname, (i.keys).n FROM pg_catalog.pg_class ct
           JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid)
           JOIN (SELECT i.indrelid, i.indisprimary,
                        information_schema._pg_expandarray(i.indkey) AS keys
                   FROM pg_catalog.pg_index i) i
             ON (a.attnum = (i.keys).x AND a.attrelid = i.indrelid)
          WHERE ct.relname = 'readings' AND i.indisprimary ORDER BY 2",
    )
    .await;
    assert_eq!(keys, ["sensor_id|1", "ts|2"]);

    // psql's \d+: ARRAY(SELECT ... FROM unnest(outer column) x) is evaluated per row.
    assert_eq!(
        rows(
            &c,
            "SELECT array_to_string(array(SELECT 'toast.' || x FROM pg_catalog.unnest(r.o) x
                                          WHERE x <> 'b'), ', ')
               FROM (SELECT make_array('a', 'b', 'c') AS o) r, pg_catalog.pg_class c
              WHERE c.relname = 'sensors'",
        )
        .await,
        ["toast.a, toast.c"]
    );

    // psql's \d policies step: a correlated ARRAY subquery over an always-empty relation.
    assert_eq!(
        rows(
            &c,
            "SELECT pol.polname, array_to_string(array(SELECT rolname FROM pg_catalog.pg_roles
                                                    WHERE oid = any (pol.polroles) ORDER BY 1), ',')
               FROM pg_catalog.pg_policy pol WHERE pol.polrelid = 'sensors'::regclass",
        )
        .await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn sizes_statistics_and_the_functions_tools_call() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(&c, SCHEMA).await;

    let sizes = "SELECT pg_table_size('readings'), pg_indexes_size('readings'),
                        pg_total_relation_size('readings'), pg_relation_size('readings_ts_idx'::regclass),
                        pg_database_size(current_database())";
    let parse = |row: &str| -> Vec<i64> { row.split('|').map(|v| v.parse().unwrap()).collect() };
    let empty = parse(&rows(&c, sizes).await[0]);
    exec(
        &c,
        "INSERT INTO readings SELECT i % 10, to_timestamp(1704067200 + i)::timestamp, i
         FROM generate_series(1, 5000) g(i)",
    )
    .await;
    let full = parse(&rows(&c, sizes).await[0]);
    assert!(
        full[0] > empty[0] + 5000 * 8,
        "rows take memory: {empty:?} -> {full:?}"
    );
    assert!(
        full[1] > empty[1],
        "index entries take memory: {empty:?} -> {full:?}"
    );
    assert_eq!(full[2], full[0] + full[1], "total = table + indexes");
    assert!(
        full[3] > 0 && full[3] < full[1],
        "one index is part of all: {full:?}"
    );
    assert!(full[4] >= full[2], "the database holds the table: {full:?}");
    let code = async |sql: &str| {
        let e = c.simple_query(sql).await.unwrap_err();
        sqlstate(&e).unwrap_or_default().to_string()
    };
    assert_eq!(code("SELECT pg_table_size('no_such_table')").await, "42P01");
    assert_eq!(code("SELECT pg_database_size('nope')").await, "3D000");

    exec(&c, "DELETE FROM readings WHERE sensor_id = 0").await;
    assert_eq!(
        rows(
            &c,
            "SELECT relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables ORDER BY relname"
        )
        .await,
        ["readings|4500|500", "sensors|0|0"]
    );

    assert_eq!(
        rows(
            &c,
            "SELECT format('%I.%I', 'public', 'Mixed Case'), format('%L|%s|%2$s', 'it''s', NULL),
                    format('%I.%I', 'public', 'readings')::regclass::oid = 'readings'::regclass::oid"
        )
        .await,
        ["public.\"Mixed Case\"|'it''s'|||t"]
    );
    assert_eq!(code("SELECT format('%s %s', 1)").await, "22023");
    assert_eq!(
        rows(
            &c,
            "SELECT word, catcode FROM pg_get_keywords() WHERE word IN ('select', 'join', 'abort')
             ORDER BY word"
        )
        .await,
        ["abort|U", "join|T", "select|R"]
    );
    exec(&c, "BEGIN").await;
    let first = rows(&c, "SELECT txid_current()").await;
    assert_eq!(
        rows(&c, "SELECT txid_current()").await,
        first,
        "one id per transaction"
    );
    exec(&c, "COMMIT").await;
    assert_ne!(rows(&c, "SELECT txid_current()").await, first);
}
