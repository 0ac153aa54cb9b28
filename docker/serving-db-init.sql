-- The role consumers read the published recommendations through: publish grants it SELECT on
-- the current views after every switch (AIRFLOW_VAR_MUSICREC_READER_ROLE). No login, no
-- password here: give each consuming service its own login role, e.g.
--   CREATE ROLE recs_api LOGIN PASSWORD '...' IN ROLE musicrec_reader;
CREATE ROLE musicrec_reader NOLOGIN;
