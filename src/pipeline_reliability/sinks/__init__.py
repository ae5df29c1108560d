"""BigQuery sinks: the only place that talks to BigQuery. Loaded lazily by the package."""
