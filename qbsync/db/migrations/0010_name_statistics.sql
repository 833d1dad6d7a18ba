-- GET /records?q= walks a folded-name index in order when the substring is common and
-- sorts the trigram index's matches when it is rare; the planner tells the two apart from
-- the names' statistics, which need a larger sample than the default to see a substring
-- of one name in a few hundred.
ALTER TABLE accounts ALTER COLUMN name_folded SET STATISTICS 1000;
ALTER TABLE customers ALTER COLUMN name_folded SET STATISTICS 1000;
