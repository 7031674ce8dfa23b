-- A doctor's languages move into their own row: lower-cased, each between newlines (which
-- names cannot hold), e.g. E'\nenglish\nspanish\n'. A language filter is then a substring test
-- on the row the search reads anyway, instead of a probe into doctor_languages for every
-- candidate it walks.
ALTER TABLE doctors ADD COLUMN language_keys TEXT NOT NULL DEFAULT '';

UPDATE doctors d SET language_keys = COALESCE(
    E'\n' || (
        SELECT string_agg(l.language_key, E'\n' ORDER BY l.language_key)
        FROM doctor_languages l WHERE l.doctor_id = d.id
    ) || E'\n',
    '');

DROP TABLE doctor_languages;
