"""The feedback service: joins feedback with traces, scores answers, builds eval cases."""
