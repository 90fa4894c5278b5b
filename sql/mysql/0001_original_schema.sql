-- The imboy schema as the Erlang server created it (April 2022), with every
-- table InnoDB.  IF NOT EXISTS: on an existing imboy database this step
-- changes nothing, and 0002 brings the old tables up to date.

CREATE TABLE IF NOT EXISTS `config` (
  `tab` varchar(20) DEFAULT NULL,
  `key` varchar(40) NOT NULL DEFAULT '',
  `value` varchar(2000) DEFAULT '',
  `title` varchar(40) DEFAULT NULL,
  `sort` bigint unsigned NOT NULL DEFAULT '20',
  `remark` varchar(128) NOT NULL DEFAULT '',
  `system` tinyint(1) NOT NULL DEFAULT '0',
  `status` tinyint(1) NOT NULL DEFAULT '1',
  `created_at` bigint unsigned NOT NULL DEFAULT '0',
  `updated_at` bigint unsigned NOT NULL DEFAULT '0',
  PRIMARY KEY (`key`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `user` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `level_id` bigint unsigned NOT NULL DEFAULT '0',
  `nickname` varchar(80) NOT NULL DEFAULT '',
  `password` varchar(800) NOT NULL DEFAULT '',
  `account` varchar(40) DEFAULT NULL,
  `mobile` varchar(40) DEFAULT NULL,
  `email` varchar(80) DEFAULT NULL,
  `region` varchar(80) NOT NULL DEFAULT '',
  `gender` tinyint unsigned NOT NULL DEFAULT '0',
  `experience` bigint unsigned NOT NULL DEFAULT '0',
  `avatar` varchar(255) NOT NULL DEFAULT '',
  `sign` varchar(255) DEFAULT '',
  `login_count` bigint unsigned NOT NULL DEFAULT '0',
  `last_login_ip` varchar(40) NOT NULL DEFAULT '',
  `last_login_at` bigint DEFAULT NULL,
  `ref_user_id` bigint NOT NULL DEFAULT '0',
  `status` tinyint(1) NOT NULL DEFAULT '1',
  `created_at` bigint DEFAULT NULL,
  `reg_ip` varchar(40) DEFAULT NULL,
  `reg_cosv` varchar(255) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk_email` (`email`),
  UNIQUE KEY `uk_mobile` (`mobile`),
  UNIQUE KEY `uk_account` (`account`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `user_setting` (
  `user_id` bigint unsigned NOT NULL,
  `setting` text NOT NULL,
  `updated_at` bigint unsigned NOT NULL DEFAULT '0',
  PRIMARY KEY (`user_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `user_device` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `user_id` bigint unsigned NOT NULL DEFAULT '0',
  `device_type` varchar(40) DEFAULT '',
  `device_id` varchar(40) DEFAULT NULL,
  `device_vsn` varchar(680) DEFAULT NULL,
  `device_name` varchar(80) DEFAULT NULL,
  `login_count` bigint unsigned NOT NULL DEFAULT '0',
  `last_login_ip` varchar(40) NOT NULL DEFAULT '',
  `last_login_at` bigint DEFAULT NULL,
  `last_active_at` bigint DEFAULT '0',
  `status` tinyint(1) NOT NULL DEFAULT '1',
  `created_at` bigint DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk_Status_UserID_DeviceID` (`status`, `user_id`, `device_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS `verification_code` (
  `id` varchar(80) NOT NULL,
  `code` varchar(20) NOT NULL DEFAULT '',
  `validity_at` bigint NOT NULL,
  `created_at` bigint NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `user_friend` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `from_user_id` bigint unsigned NOT NULL,
  `to_user_id` bigint unsigned NOT NULL,
  `status` tinyint(1) NOT NULL DEFAULT '1',
  `category_id` bigint DEFAULT '0',
  `remark` varchar(80) NOT NULL DEFAULT '',
  `updated_at` bigint DEFAULT NULL,
  `created_at` bigint NOT NULL,
  `setting` text NULL,
  PRIMARY KEY (`id`),
  KEY `i_Status_FromUid_Cid` (`status`, `from_user_id`, `category_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `user_friend_category` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(80) NOT NULL DEFAULT '',
  `owner_user_id` bigint unsigned NOT NULL DEFAULT '0',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `group` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `type` tinyint(1) DEFAULT '0',
  `join_limit` tinyint(1) DEFAULT '0',
  `content_limit` tinyint(1) DEFAULT '2',
  `owner_uid` bigint NOT NULL,
  `creater_uid` bigint NOT NULL,
  `member_max` bigint NOT NULL DEFAULT '50',
  `member_count` bigint NOT NULL DEFAULT '1',
  `notification` varchar(800) NOT NULL DEFAULT '',
  `introduction` varchar(2000) NOT NULL DEFAULT '',
  `avatar` varchar(200) NOT NULL DEFAULT '',
  `groupname` varchar(80) NOT NULL DEFAULT '',
  `status` tinyint(1) NOT NULL DEFAULT '1',
  `updated_at` bigint unsigned NOT NULL DEFAULT '0',
  `created_at` bigint unsigned NOT NULL DEFAULT '0',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `group_member` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `group_id` bigint NOT NULL,
  `user_id` bigint NOT NULL,
  `alias` varchar(80) NOT NULL DEFAULT '',
  `description` varchar(800) DEFAULT '',
  `role` tinyint unsigned NOT NULL DEFAULT '0',
  `status` tinyint(1) NOT NULL DEFAULT '0',
  `updated_at` bigint unsigned NOT NULL DEFAULT '0',
  `created_at` bigint unsigned NOT NULL DEFAULT '0',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `group_member_log` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `type` tinyint(1) DEFAULT '0',
  `group_member_id` bigint NOT NULL,
  `group_id` bigint NOT NULL,
  `user_id` bigint NOT NULL,
  `option_uid` bigint NOT NULL DEFAULT '0',
  `remark` varchar(200) DEFAULT '',
  `created_at` bigint unsigned NOT NULL DEFAULT '0',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `msg_c2c` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `from_id` bigint NOT NULL,
  `to_id` bigint NOT NULL,
  `created_at` bigint unsigned NOT NULL DEFAULT '0',
  `server_ts` bigint unsigned NOT NULL DEFAULT '0',
  `msg_id` varchar(40) NOT NULL,
  `payload` text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk_MsgId` (`msg_id`),
  KEY `i_ToId` (`to_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `msg_c2g` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `from_id` bigint NOT NULL,
  `to_groupid` bigint NOT NULL,
  `created_at` bigint unsigned NOT NULL DEFAULT '0',
  `msg_id` varchar(40) NOT NULL,
  `payload` text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk_MsgId` (`msg_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `msg_c2g_timeline` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `to_groupid` bigint NOT NULL,
  `to_id` bigint NOT NULL,
  `created_at` bigint unsigned NOT NULL DEFAULT '0',
  `msg_id` varchar(40) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `i_MsgId_ToId` (`msg_id`, `to_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
