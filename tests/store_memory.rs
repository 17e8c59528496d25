//! `/dataStore/storeMemoryLimit`: a table larger than the limit is swapped out to files and
//! still reads, updates and deletes like one held in memory, across a crash and restart.

mod common;

use bytes::Bytes;
use common::{TestServer, exec, text_rows, within};
use futures::SinkExt;
use tokio_postgres::Client;

const ROWS: i64 = 60_000;

/// A data directory that outlives restarts, and the arguments of a server on it with a 1 MB
/// store memory limit.
struct Limited {
    _dir: tempfile::TempDir,
    data_dir: std::path::PathBuf,
    args: Vec<String>,
}

impl Limited {
    fn new() -> Limited {
        let dir = common::temp_dir();
        let config = dir.path().join("kura.json");
        std::fs::write(
            &config,
            r#"{"dataStore": {"storeMemoryLimit": "1MB", "chunkRows": 1024}}"#,
        )
        .expect("config written");
        let args = vec![
            "--config".to_string(),
            config.to_str().expect("utf-8 path").to_string(),
        ];
        Limited {
            data_dir: dir.path().join("data"),
            _dir: dir,
            args,
        }
    }

    fn start(&self) -> TestServer {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        TestServer::start_in(&self.data_dir, &args)
    }
}

/// Sends `data` through `COPY ... FROM STDIN`; returns the rows the server reports.
async fn copy_in(client: &Client, sql: &str, data: &str) -> u64 {
    let sink = client.copy_in(sql).await.expect("copy");
    futures::pin_mut!(sink);
    for piece in data.as_bytes().chunks(1 << 16) {
        sink.send(Bytes::copy_from_slice(piece))
            .await
            .expect("send");
    }
    sink.finish().await.expect("copy done")
}

async fn load(client: &Client) {
    exec(client, "CREATE TABLE big (id int PRIMARY KEY, v text)").await;
    let mut data = String::new();
    for id in 0..ROWS {
        data.push_str(&format!("{id}\t{}\n", format_args!("{id:0>100}")));
    }
    assert_eq!(
        copy_in(client, "COPY big FROM STDIN", &data).await,
        ROWS as u64
    );
}

/// Row data in memory and in swap files, summed over the table's data partitions.
async fn residency(client: &Client) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT sum(memory_bytes)::bigint, sum(swapped_bytes)::bigint \
             FROM \"#table_partitions\" WHERE table_name = 'big'",
            &[],
        )
        .await
        .expect("residency");
    (row.get(0), row.get(1))
}

async fn check_contents(client: &Client, deleted: i64) {
    let expected_sum = (0..ROWS).sum::<i64>() - deleted;
    assert_eq!(
        text_rows(client, "SELECT count(*), sum(id), min(length(v)) FROM big").await,
        vec![format!("{}|{expected_sum}|100", ROWS - 1)]
    );
    assert_eq!(
        text_rows(client, "SELECT v FROM big WHERE id = 17").await,
        vec![format!("{:0>100}", 17)]
    );
}

#[tokio::test]
async fn a_table_larger_than_the_memory_limit_is_swapped_out_and_stays_whole() {
    let limited = Limited::new();
    let data_dir = &limited.data_dir;
    let mut server = limited.start();
    let client = server.connect().await;
    load(&client).await;

    let (memory, swapped) = residency(&client).await;
    // About 6.5 MB of rows under a 1 MB limit: most of it is in swap files; what stays in
    // memory is the limit's worth of rows plus every chunk's version stamps.
    assert!(swapped > 4_000_000, "swapped {swapped} bytes");
    assert!(memory < 3_000_000, "{memory} bytes in memory");
    assert!(
        std::fs::read_dir(data_dir.join("swap"))
            .expect("swap dir")
            .count()
            > 0
    );

    // Rows in swapped chunks are found by key, changed and deleted like any other.
    assert_eq!(
        text_rows(&client, "SELECT length(v) FROM big WHERE id = 5").await,
        vec!["100"]
    );
    exec(&client, "UPDATE big SET v = 'changed' WHERE id = 5").await;
    exec(&client, "DELETE FROM big WHERE id = 6").await;
    exec(&client, "UPDATE big SET v = repeat('y', 100) WHERE id = 5").await;
    check_contents(&client, 6).await;

    server.kill();
    let server = limited.start();
    let client = server.connect().await;
    check_contents(&client, 6).await;
    let (_, swapped) = residency(&client).await;
    assert!(swapped > 4_000_000, "swapped {swapped} bytes after restart");

    exec(&client, "DROP TABLE big").await;
    within("swap files deleted after DROP TABLE", async {
        while std::fs::read_dir(data_dir.join("swap"))
            .expect("swap dir")
            .count()
            > 0
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_transaction_larger_than_the_memory_limit_spills_its_rows_and_commits_them_whole() {
    let limited = Limited::new();
    let mut server = limited.start();
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE series (ts timestamp NOT NULL, id int, v text) \
         PARTITION BY RANGE (ts) EVERY (1, DAY)",
    )
    .await;
    let copy = |first: i64| {
        let mut data = String::new();
        for id in first..first + ROWS {
            // Ten rows a minute: consecutive rows share a day, a few hundred cross into the next.
            let minute = id / 10;
            data.push_str(&format!(
                "2026-01-{:02} {:02}:{:02}:00\t{id}\t{:0>100}\n",
                1 + minute / 1440,
                minute / 60 % 24,
                minute % 60,
                id
            ));
        }
        data
    };
    exec(&client, "BEGIN").await;
    let copied = copy_in(&client, "COPY series FROM STDIN", &copy(0)).await;
    assert_eq!(copied, ROWS as u64);
    // The transaction reads its own spilled rows and deletes some of them again.
    assert_eq!(
        text_rows(&client, "SELECT count(*), sum(id) FROM series").await,
        vec![format!("{ROWS}|{}", (0..ROWS).sum::<i64>())]
    );
    exec(&client, "DELETE FROM series WHERE id % 1000 = 0").await;
    exec(&client, "COMMIT").await;

    // A rolled-back COPY of the same size leaves nothing behind.
    exec(&client, "BEGIN").await;
    copy_in(&client, "COPY series FROM STDIN", &copy(ROWS)).await;
    exec(&client, "ROLLBACK").await;

    let kept: Vec<i64> = (0..ROWS).filter(|id| id % 1000 != 0).collect();
    let expected = vec![format!("{}|{}", kept.len(), kept.iter().sum::<i64>())];
    let sums = "SELECT count(*), sum(id) FROM series";
    assert_eq!(text_rows(&client, sums).await, expected);
    assert_eq!(
        text_rows(
            &client,
            "SELECT count(*) FROM \"#table_partitions\" WHERE table_name = 'series'"
        )
        .await,
        vec!["5"]
    );
    server.kill();
    let server = limited.start();
    let client = server.connect().await;
    assert_eq!(text_rows(&client, sums).await, expected);
}
