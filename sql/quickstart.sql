-- Kura quickstart.
--
-- Start a server, then run this script with psql:
--
--   kura serve --listen 127.0.0.1:5433 --data-dir ./kura-data
--   psql -h 127.0.0.1 -p 5433 -U kura -d kura -f sql/quickstart.sql
--
-- It can be run again and again: it drops what it creates first.
-- Everything down to the last section is plain PostgreSQL and runs unchanged on PostgreSQL;
-- the last section uses GridDB's type names and INSERT OR REPLACE, which only Kura accepts.

DROP VIEW IF EXISTS hourly_temperature;
DROP TABLE IF EXISTS readings;
DROP TABLE IF EXISTS sensors;

-- 1. Two tables: sensors, and their readings keyed by (sensor, time).
CREATE TABLE sensors (
    id       integer PRIMARY KEY,
    name     text NOT NULL,
    location varchar(64),
    active   boolean NOT NULL DEFAULT true
);

CREATE TABLE readings (
    sensor_id   integer NOT NULL,
    ts          timestamp NOT NULL,
    temperature double precision,
    humidity    real,
    PRIMARY KEY (sensor_id, ts)
);

-- 2. Some rows.
INSERT INTO sensors (id, name, location) VALUES
    (1, 'greenhouse', 'garden'),
    (2, 'cellar',     'basement'),
    (3, 'attic',      'roof');

INSERT INTO readings VALUES
    (1, '2024-05-01 08:00:00', 21.0, 60.5),
    (1, '2024-05-01 08:30:00', 22.0, 58.0),
    (1, '2024-05-01 09:00:00', 23.0, 55.5),
    (1, '2024-05-01 09:30:00', 24.0, 52.0),
    (2, '2024-05-01 08:00:00', 12.5, 80.0),
    (2, '2024-05-01 09:00:00', 13.5, 79.5),
    (3, '2024-05-01 08:00:00', 30.5, 35.0);

-- 3. Aggregate per sensor.
SELECT s.name,
       count(*)                                  AS readings,
       CAST(avg(r.temperature) AS numeric(6,1))  AS avg_temp,
       max(r.temperature)                        AS max_temp
FROM readings r
JOIN sensors s ON s.id = r.sensor_id
GROUP BY s.name
ORDER BY s.name;

-- 4. A transaction: retire the attic sensor and its data, all or nothing.
BEGIN;
UPDATE sensors SET active = false WHERE name = 'attic';
DELETE FROM readings WHERE sensor_id = 3;
COMMIT;

-- A transaction that is rolled back leaves no trace.
BEGIN;
DELETE FROM readings;
SELECT count(*) AS rows_inside_transaction FROM readings;
ROLLBACK;
SELECT count(*) AS rows_after_rollback FROM readings;

-- 5. A view: hourly averages.
CREATE VIEW hourly_temperature AS
SELECT sensor_id,
       date_trunc('hour', ts)                  AS hour,
       CAST(avg(temperature) AS numeric(6,2))  AS avg_temp
FROM readings
GROUP BY sensor_id, date_trunc('hour', ts);

-- 6. A join of the view with a table.
SELECT s.name, h.hour, h.avg_temp
FROM hourly_temperature h
JOIN sensors s ON s.id = h.sensor_id
WHERE s.active
ORDER BY s.name, h.hour;

-- 7. GridDB spelling (Kura only; PostgreSQL has no STRING, LONG or DOUBLE types and no
--    INSERT OR REPLACE). INSERT OR REPLACE overwrites the row with the same primary key.
DROP TABLE IF EXISTS device_log;

CREATE TABLE device_log (
    id      LONG PRIMARY KEY,
    device  STRING NOT NULL,
    reading DOUBLE,
    ts      TIMESTAMP
);

INSERT INTO device_log VALUES
    (1, 'pump-a', 3.5, '2024-05-01 08:00:00'),
    (2, 'pump-b', 4.25, '2024-05-01 08:00:00');

INSERT OR REPLACE INTO device_log VALUES (2, 'pump-b', 4.75, '2024-05-01 09:00:00');

SELECT id, device, reading, ts FROM device_log ORDER BY id;
