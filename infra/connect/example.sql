-- An example table to stream: a helpdesk's tickets (compose loads it into its postgres).
CREATE TABLE IF NOT EXISTS tickets (
    id       integer PRIMARY KEY,
    subject  text NOT NULL,
    body     text NOT NULL,
    groups   text[] NOT NULL DEFAULT '{}',
    status   text NOT NULL DEFAULT 'open',
    priority integer
);
INSERT INTO tickets (id, subject, body, groups, status, priority) VALUES
    (1, 'VPN drops every hour', 'Reconnect with the new profile from the IT portal.', '{}', 'solved', 2),
    (2, 'Payroll export fails', 'The March export needs the updated tax table.', '{hr}', 'open', 1)
ON CONFLICT (id) DO NOTHING;
