-- Bring an imboy database (new, or made by the Erlang server) up to what
-- this server needs.  Every step is safe to meet twice: "already exists"
-- errors are skipped by the migration runner.  Nothing is dropped.

-- Fixed: the original kept messages in MyISAM, which loses writes on a crash.
ALTER TABLE `config` ENGINE=InnoDB;
ALTER TABLE `msg_c2c` ENGINE=InnoDB;
ALTER TABLE `msg_c2g` ENGINE=InnoDB;
ALTER TABLE `msg_c2g_timeline` ENGINE=InnoDB;

-- The user's chosen presence: online, offline or hide.
ALTER TABLE `user` ADD COLUMN `state` varchar(10) NOT NULL DEFAULT 'online';

-- Verification codes: wrong attempts, so a code dies after five guesses.
ALTER TABLE `verification_code` ADD COLUMN `attempts` int NOT NULL DEFAULT '0';

-- msg_c2c keeps every message (so a resent id is answered with its first
-- server_ts even after the recipient acked); `status` says whether it is
-- still pending: 0 pending, 1 acknowledged, 2 dropped (over the limit).
-- Rows of the Erlang server were pending, so the default is 0.
ALTER TABLE `msg_c2c` ADD COLUMN `status` tinyint NOT NULL DEFAULT '0';
ALTER TABLE `msg_c2c` ADD INDEX `i_ToId_Status_Id` (`to_id`, `status`, `id`);

-- Group messages get a server timestamp; the timeline holds one pending
-- entry per member who has not acked yet.
ALTER TABLE `msg_c2g` ADD COLUMN `server_ts` bigint unsigned NOT NULL DEFAULT '0';
DELETE t1 FROM `msg_c2g_timeline` t1 JOIN `msg_c2g_timeline` t2
  ON t1.msg_id = t2.msg_id AND t1.to_id = t2.to_id AND t1.id > t2.id;
ALTER TABLE `msg_c2g_timeline` ADD UNIQUE KEY `uk_MsgId_ToId` (`msg_id`, `to_id`);
ALTER TABLE `msg_c2g_timeline` ADD INDEX `i_ToId_Id` (`to_id`, `id`);

-- Fixed: unique keys stop duplicate friendships and memberships.  Older
-- databases may hold duplicates: keep the first row of each.
DELETE t1 FROM `user_friend` t1 JOIN `user_friend` t2
  ON t1.from_user_id = t2.from_user_id AND t1.to_user_id = t2.to_user_id AND t1.id > t2.id;
ALTER TABLE `user_friend` ADD UNIQUE KEY `uk_FromUID_ToUID` (`from_user_id`, `to_user_id`);
ALTER TABLE `user_friend` ADD INDEX `i_ToUid` (`to_user_id`);
DELETE t1 FROM `group_member` t1 JOIN `group_member` t2
  ON t1.group_id = t2.group_id AND t1.user_id = t2.user_id AND t1.id > t2.id;
ALTER TABLE `group_member` ADD UNIQUE KEY `uk_GroupId_UserId` (`group_id`, `user_id`);
ALTER TABLE `group_member` ADD INDEX `i_UserId_Status` (`user_id`, `status`);
ALTER TABLE `user_friend_category` ADD INDEX `i_OwnerUserId` (`owner_user_id`);

-- New: friend requests waiting for an answer (PROTOCOL /friend/apply).
CREATE TABLE IF NOT EXISTS `user_friend_apply` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `from_user_id` bigint unsigned NOT NULL,
  `to_user_id` bigint unsigned NOT NULL,
  `msg` varchar(255) NOT NULL DEFAULT '',
  `status` tinyint NOT NULL DEFAULT '0',
  `created_at` bigint unsigned NOT NULL DEFAULT '0',
  `updated_at` bigint unsigned NOT NULL DEFAULT '0',
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk_From_To` (`from_user_id`, `to_user_id`),
  KEY `i_To_Status` (`to_user_id`, `status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Frames may carry up to 1 MiB: TEXT (64 KiB) would refuse large payloads.
ALTER TABLE `msg_c2c` MODIFY `payload` mediumtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE `msg_c2g` MODIFY `payload` mediumtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
