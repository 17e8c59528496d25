-- Kura time-series demo: interval-hash partitions, a retention period, ingest, range queries
-- with partition pruning, gap-filled aggregation, and expiry.
--
-- Start a server, then run this script with psql:
--
--   kura serve --listen 127.0.0.1:5433 --data-dir ./kura-data
--   psql -h 127.0.0.1 -p 5433 -U kura -d kura -f sql/timeseries_demo.sql
--
-- It can be run again and again: it drops what it creates first. It uses GridDB's syntax
-- (PARTITION BY ... EVERY, SUBPARTITION BY HASH, expiry options, GROUP BY RANGE ... FILL,
-- metatables), which only Kura accepts.

\pset footer off
DROP TABLE IF EXISTS sensor_data;

-- 1. One day per interval, each day split by device into 4 hash buckets; a data partition
--    expires 7 days after its day ends, and from then on its rows are invisible.
CREATE TABLE sensor_data (
    ts          TIMESTAMP NOT NULL,
    device      STRING NOT NULL,
    temperature DOUBLE,
    humidity    DOUBLE,
    PRIMARY KEY (ts, device)
) WITH (expiration_type = 'PARTITION', expiration_time = 7, expiration_time_unit = 'DAY')
  PARTITION BY RANGE (ts) EVERY (1, DAY)
  SUBPARTITION BY HASH (device) SUBPARTITIONS 4;

SELECT table_name, table_optional_type, partition_type, partition_column,
       partition_interval_value, partition_interval_unit,
       subpartition_type, subpartition_column, subpartition_division_count,
       expiration_time, expiration_time_unit
  FROM "#tables" WHERE table_name = 'sensor_data';

-- 2. Ingest ten days of readings from 8 devices, one every 5 minutes. Rows of days that are
--    already past their retention are accepted and not stored (GridDB's rule), so fewer rows
--    than generated end up in the table.
INSERT INTO sensor_data
SELECT t.ts,
       'dev-' || d.n,
       20 + d.n + 5 * sin(extract(epoch FROM t.ts) / 3600.0),
       40 + 2 * d.n
  FROM generate_series(date_trunc('minute', now()::timestamp) - INTERVAL '10 days',
                       date_trunc('minute', now()::timestamp),
                       INTERVAL '5 minutes') AS t(ts),
       generate_series(1, 8) AS d(n);

SELECT count(*) AS stored_rows, min(ts) AS oldest, max(ts) AS newest FROM sensor_data;

-- Each interval has up to 4 hash partitions; each partition knows when it expires.
SELECT partition_boundary_value AS day, count(*) AS partitions, sum(num_rows) AS rows,
       min(partition_expired_check_time) AS expires_at
  FROM "#table_partitions" WHERE table_name = 'sensor_data'
 GROUP BY partition_boundary_value ORDER BY day;

-- 3. Range queries read only the partitions they need: the last day of one device touches
--    one or two intervals and one hash bucket each (see data_partitions=read/total).
EXPLAIN SELECT avg(temperature) FROM sensor_data
 WHERE ts >= now() - INTERVAL '1 day' AND device = 'dev-3';

SELECT device, round(avg(temperature), 2) AS avg_temp, count(*) AS readings
  FROM sensor_data
 WHERE ts >= now() - INTERVAL '1 day'
 GROUP BY device ORDER BY device;

-- 4. Gap-filled aggregation: hourly averages of one device over the last 12 hours, after a
--    3-hour outage. FILL (NULL) shows the gap, FILL (LINEAR) interpolates across it,
--    FILL (PREVIOUS) repeats the last value, FILL (NONE) leaves empty hours out.
DELETE FROM sensor_data
 WHERE device = 'dev-3'
   AND ts >= date_trunc('hour', now()::timestamp) - INTERVAL '6 hours'
   AND ts <  date_trunc('hour', now()::timestamp) - INTERVAL '3 hours';

SELECT ts AS hour, round(avg(temperature), 2) AS avg_temp
  FROM sensor_data
 WHERE device = 'dev-3'
   AND ts >= date_trunc('hour', now()::timestamp) - INTERVAL '12 hours'
   AND ts <  date_trunc('hour', now()::timestamp)
 GROUP BY RANGE(ts) EVERY (1, HOUR) FILL (NULL);

SELECT hour, round(avg_temp, 2) AS avg_temp FROM (
  SELECT ts AS hour, avg(temperature) AS avg_temp
    FROM sensor_data
   WHERE device = 'dev-3'
     AND ts >= date_trunc('hour', now()::timestamp) - INTERVAL '12 hours'
     AND ts <  date_trunc('hour', now()::timestamp)
   GROUP BY RANGE(ts) EVERY (1, HOUR) FILL (LINEAR)
) AS hourly ORDER BY hour;

SELECT ts AS hour, max(humidity) AS humidity
  FROM sensor_data
 WHERE device = 'dev-3'
   AND ts >= date_trunc('hour', now()::timestamp) - INTERVAL '12 hours'
   AND ts <  date_trunc('hour', now()::timestamp)
 GROUP BY RANGE(ts) EVERY (1, HOUR) FILL (PREVIOUS);

SELECT ts AS hour, count(*) AS readings
  FROM sensor_data
 WHERE device = 'dev-3'
   AND ts >= date_trunc('hour', now()::timestamp) - INTERVAL '12 hours'
   AND ts <  date_trunc('hour', now()::timestamp)
 GROUP BY RANGE(ts) EVERY (1, HOUR) FILL (NONE);

-- 5. Expiry: a reading from 30 days ago is accepted but not stored (INSERT 0 0), and
--    dropping the oldest stored day removes its partitions at once.
INSERT INTO sensor_data VALUES (now()::timestamp - INTERVAL '30 days', 'dev-1', 21.5, 45);

ALTER TABLE sensor_data DROP PARTITION FOR (date_trunc('day', now()::timestamp) - INTERVAL '7 days');

SELECT count(*) AS stored_rows, min(ts) AS oldest FROM sensor_data;

-- The background reaper releases partitions once they expire; a server started with the
-- hidden --test-clock flag lets tests move the clock (SET kura.test_clock = '...') to watch
-- it happen without waiting a week.
