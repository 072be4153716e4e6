-- porter_enqueue is compiled under standard_conforming_strings on, whatever the caller's
-- session says. PL/pgSQL compiles a function's body under the settings in force at its first
-- call in a session; the name check quotes a bad name with literals such as '\' (0045), which
-- with the setting off (an old driver's or application's choice) open a string that never
-- ends: every call failed, valid ones too, with the body's text in the error (review of 5 Dec).
-- A function's own SET is in force while it is compiled and run, as its search path (0048).
ALTER FUNCTION porter_enqueue(text, jsonb, text, integer, integer, timestamptz, text, text, text, bigint[], boolean, jsonb)
    SET standard_conforming_strings = on;
