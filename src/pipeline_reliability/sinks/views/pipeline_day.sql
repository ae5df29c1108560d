-- pipeline_day: one row per (phase, date) over run_history, phase_execution_log
-- and completion_ledger: who reported when, the trigger's state, the degraded rows.
-- {dataset} is replaced by `project.dataset` when bootstrap creates the view.
-- STRUCT fields are always named (AS ...): BigQuery needs no more, the emulator does.
WITH reports AS (
  SELECT
    phase,
    `date`,
    ARRAY_AGG(STRUCT(
      processor AS processor, execution_id AS execution_id, status AS status,
      outcome AS outcome, completed_at AS completed_at, received_at AS received_at,
      service AS service, revision AS revision, replayed AS replayed
    ) ORDER BY received_at) AS reports,
    MIN(received_at) AS first_report_at,
    MAX(received_at) AS last_report_at,
    MAX(done_count) AS done_count,
    MAX(expected_count) AS expected_count,
    COUNTIF(outcome = 'ignored') AS ignored_reports,
    COUNTIF(outcome = 'degraded') AS degraded_reports
  FROM `{dataset}.run_history`
  GROUP BY phase, `date`
),
last_state AS (
  SELECT phase, `date`, trigger_state AS last_trigger_state
  FROM `{dataset}.run_history`
  WHERE trigger_state IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY phase, `date` ORDER BY received_at DESC) = 1
),
triggers AS (
  SELECT
    phase_name AS phase,
    game_date AS `date`,
    MAX(IF(status IN ('complete', 'partial'), execution_timestamp, NULL)) AS triggered_at,
    MAX(IF(status = 'deadline_exceeded', execution_timestamp, NULL)) AS deadline_exceeded_at,
    COUNTIF(status IN ('complete', 'partial')) AS triggers_logged
  FROM `{dataset}.phase_execution_log`
  GROUP BY phase_name, game_date
),
last_trigger AS (
  SELECT phase_name AS phase, game_date AS `date`, status AS trigger_status
  FROM `{dataset}.phase_execution_log`
  QUALIFY ROW_NUMBER() OVER (PARTITION BY phase_name, game_date ORDER BY execution_timestamp DESC) = 1
),
replayed AS (
  SELECT DISTINCT phase, `date`, processor, execution_id
  FROM `{dataset}.run_history`
  WHERE replayed
),
degraded AS (
  SELECT
    l.phase,
    l.`date`,
    ARRAY_AGG(STRUCT(
      l.processor AS processor, l.execution_id AS execution_id, l.status AS status,
      l.event_time AS event_time, r.processor IS NOT NULL AS replayed
    ) ORDER BY l.event_time) AS degraded_rows,
    COUNT(*) AS degraded_count,
    COUNTIF(r.processor IS NULL) AS unreplayed_count
  FROM `{dataset}.completion_ledger` AS l
  LEFT JOIN replayed AS r
    ON r.phase = l.phase AND r.`date` = l.`date`
    AND r.processor = l.processor AND r.execution_id = l.execution_id
  WHERE NOT l.primary_ok
  GROUP BY l.phase, l.`date`
),
days AS (
  SELECT phase, `date` FROM reports
  UNION DISTINCT SELECT phase, `date` FROM triggers
  UNION DISTINCT SELECT phase, `date` FROM degraded
)
SELECT
  d.phase,
  d.`date`,
  r.expected_count,
  r.done_count,
  r.done_count IS NOT NULL AND r.done_count = r.expected_count AS complete,
  r.first_report_at,
  r.last_report_at,
  IFNULL(r.ignored_reports, 0) AS ignored_reports,
  IFNULL(r.degraded_reports, 0) AS degraded_reports,
  s.last_trigger_state,
  lt.trigger_status,
  t.triggered_at,
  t.deadline_exceeded_at,
  IFNULL(t.triggers_logged, 0) AS triggers_logged,
  IFNULL(g.degraded_count, 0) AS degraded_count,
  IFNULL(g.unreplayed_count, 0) AS unreplayed_count,
  r.reports,
  g.degraded_rows
FROM days AS d
LEFT JOIN reports AS r ON r.phase = d.phase AND r.`date` = d.`date`
LEFT JOIN last_state AS s ON s.phase = d.phase AND s.`date` = d.`date`
LEFT JOIN triggers AS t ON t.phase = d.phase AND t.`date` = d.`date`
LEFT JOIN last_trigger AS lt ON lt.phase = d.phase AND lt.`date` = d.`date`
LEFT JOIN degraded AS g ON g.phase = d.phase AND g.`date` = d.`date`
