//! SQL cursors through a real client: DECLARE / FETCH / MOVE / CLOSE in a transaction block,
//! SCROLL cursors going back, WITH HOLD cursors outliving their transaction, pg_cursors, and
//! the errors PostgreSQL gives.

mod common;

use common::{TestServer, exec, sqlstate, text_rows as rows};

#[tokio::test]
async fn cursors_fetch_move_and_close_like_postgres() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE t (id integer PRIMARY KEY, label text);
         INSERT INTO t SELECT value, 'row ' || value FROM generate_series(1, 1000);",
    )
    .await;

    // Outside a block only WITH HOLD cursors may be declared.
    let e = c
        .batch_execute("DECLARE c CURSOR FOR SELECT id FROM t")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("25P01"));

    exec(
        &c,
        "BEGIN; DECLARE c CURSOR FOR SELECT id FROM t ORDER BY id",
    )
    .await;
    assert_eq!(rows(&c, "FETCH 3 FROM c").await, ["1", "2", "3"]);
    assert_eq!(rows(&c, "FETCH NEXT FROM c").await, ["4"]);
    exec(&c, "MOVE FORWARD 10 IN c").await;
    assert_eq!(rows(&c, "FETCH 1 IN c").await, ["15"]);
    assert_eq!(
        rows(
            &c,
            "SELECT name, is_scrollable, is_holdable FROM pg_cursors"
        )
        .await,
        ["c|f|f"]
    );
    let e = c.batch_execute("FETCH PRIOR FROM c").await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("55000"), "no SCROLL: forward only");
    exec(&c, "ROLLBACK").await;

    // SCROLL goes both ways; the fetched rows come in the order they are reached.
    exec(
        &c,
        "BEGIN; DECLARE s SCROLL CURSOR FOR SELECT id FROM t WHERE id > 10 ORDER BY id",
    )
    .await;
    assert_eq!(
        rows(&c, "FETCH 5 FROM s").await,
        ["11", "12", "13", "14", "15"]
    );
    exec(&c, "MOVE -3 FROM s").await;
    assert_eq!(rows(&c, "FETCH NEXT FROM s").await, ["13"]);
    assert_eq!(rows(&c, "FETCH LAST FROM s").await, ["1000"]);
    assert_eq!(rows(&c, "FETCH BACKWARD 2 FROM s").await, ["999", "998"]);
    assert_eq!(rows(&c, "FETCH ABSOLUTE 1 FROM s").await, ["11"]);
    let e = c
        .batch_execute("DECLARE s CURSOR FOR SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("42P03"));
    exec(&c, "ROLLBACK").await;

    // The block ended: its cursors are gone.
    let e = c.batch_execute("FETCH NEXT FROM s").await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("34000"));

    // WITH HOLD: declared in a committed block, read after it; unaffected by later writes.
    exec(
        &c,
        "BEGIN; DECLARE h CURSOR WITH HOLD FOR SELECT id FROM t WHERE id <= 3 ORDER BY id; COMMIT",
    )
    .await;
    exec(&c, "DELETE FROM t WHERE id <= 3").await;
    assert_eq!(rows(&c, "FETCH ALL FROM h").await, ["1", "2", "3"]);
    exec(&c, "CLOSE h").await;
    assert_eq!(rows(&c, "SELECT count(*) FROM pg_cursors").await, ["0"]);

    // A holdable cursor declared in a block that rolls back goes with it.
    exec(
        &c,
        "BEGIN; DECLARE g CURSOR WITH HOLD FOR SELECT 1; ROLLBACK",
    )
    .await;
    assert_eq!(rows(&c, "SELECT count(*) FROM pg_cursors").await, ["0"]);
}
