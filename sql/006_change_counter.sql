-- The change sequence from a counter that only goes up. The triggers numbered each change
-- max(seq) + 1, which went back when the purge of removed domains deleted the rows holding the
-- highest numbers: the next changes were numbered below what the gate's followers had already
-- read past, and never reached them (a detach stayed allowed until the gateway restarted).

CREATE TABLE change_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);

INSERT INTO change_counter (id, value) SELECT 1, coalesce(max(seq), 0) FROM domains;

DROP TRIGGER domains_seq_on_insert;
CREATE TRIGGER domains_seq_on_insert AFTER INSERT ON domains
BEGIN
    UPDATE change_counter SET value = value + 1;
    UPDATE domains SET seq = (SELECT value FROM change_counter) WHERE id = NEW.id;
END;

DROP TRIGGER domains_seq_on_update;
CREATE TRIGGER domains_seq_on_update AFTER UPDATE OF status, app, hostname ON domains
BEGIN
    UPDATE change_counter SET value = value + 1;
    UPDATE domains SET seq = (SELECT value FROM change_counter) WHERE id = NEW.id;
END;

DROP TRIGGER apps_seq_on_insert;
CREATE TRIGGER apps_seq_on_insert AFTER INSERT ON apps
BEGIN
    UPDATE change_counter SET value = value + 1;
    UPDATE domains SET seq = (SELECT value FROM change_counter) WHERE app = NEW.name;
END;

DROP TRIGGER apps_seq_on_update;
CREATE TRIGGER apps_seq_on_update AFTER UPDATE OF upstream, tenant_id, name ON apps
BEGIN
    UPDATE change_counter SET value = value + 1;
    UPDATE domains SET seq = (SELECT value FROM change_counter)
    WHERE app IN (OLD.name, NEW.name);
END;

DROP TRIGGER apps_seq_on_delete;
CREATE TRIGGER apps_seq_on_delete AFTER DELETE ON apps
BEGIN
    UPDATE change_counter SET value = value + 1;
    UPDATE domains SET seq = (SELECT value FROM change_counter) WHERE app = OLD.name;
END;
