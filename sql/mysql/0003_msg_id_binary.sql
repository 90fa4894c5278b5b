-- Message ids are chosen by clients and compared exactly: with the general
-- collation "Msg1" and "msg1" (or "a" and "a ") were one message, and the
-- second was taken for a resend and never delivered.  SQLite already
-- compares them byte for byte.
ALTER TABLE `msg_c2c` MODIFY `msg_id` varchar(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE `msg_c2g` MODIFY `msg_id` varchar(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE `msg_c2g_timeline` MODIFY `msg_id` varchar(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
