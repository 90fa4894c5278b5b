-- The imboy schema for the embedded SQLite default: the same tables and
-- columns as sql/mysql (0001 + 0002), in SQLite's types.

CREATE TABLE `config` (
  `tab` TEXT DEFAULT NULL,
  `key` TEXT NOT NULL PRIMARY KEY,
  `value` TEXT DEFAULT '',
  `title` TEXT DEFAULT NULL,
  `sort` INTEGER NOT NULL DEFAULT 20,
  `remark` TEXT NOT NULL DEFAULT '',
  `system` INTEGER NOT NULL DEFAULT 0,
  `status` INTEGER NOT NULL DEFAULT 1,
  `created_at` INTEGER NOT NULL DEFAULT 0,
  `updated_at` INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE `user` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `level_id` INTEGER NOT NULL DEFAULT 0,
  `nickname` TEXT NOT NULL DEFAULT '',
  `password` TEXT NOT NULL DEFAULT '',
  `account` TEXT DEFAULT NULL UNIQUE,
  `mobile` TEXT DEFAULT NULL UNIQUE,
  `email` TEXT DEFAULT NULL UNIQUE,
  `region` TEXT NOT NULL DEFAULT '',
  `gender` INTEGER NOT NULL DEFAULT 0,
  `experience` INTEGER NOT NULL DEFAULT 0,
  `avatar` TEXT NOT NULL DEFAULT '',
  `sign` TEXT DEFAULT '',
  `login_count` INTEGER NOT NULL DEFAULT 0,
  `last_login_ip` TEXT NOT NULL DEFAULT '',
  `last_login_at` INTEGER DEFAULT NULL,
  `ref_user_id` INTEGER NOT NULL DEFAULT 0,
  `status` INTEGER NOT NULL DEFAULT 1,
  `created_at` INTEGER DEFAULT NULL,
  `reg_ip` TEXT DEFAULT NULL,
  `reg_cosv` TEXT DEFAULT NULL,
  `state` TEXT NOT NULL DEFAULT 'online'
);

CREATE TABLE `user_setting` (
  `user_id` INTEGER NOT NULL PRIMARY KEY,
  `setting` TEXT NOT NULL,
  `updated_at` INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE `user_device` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `user_id` INTEGER NOT NULL DEFAULT 0,
  `device_type` TEXT DEFAULT '',
  `device_id` TEXT DEFAULT NULL,
  `device_vsn` TEXT DEFAULT NULL,
  `device_name` TEXT DEFAULT NULL,
  `login_count` INTEGER NOT NULL DEFAULT 0,
  `last_login_ip` TEXT NOT NULL DEFAULT '',
  `last_login_at` INTEGER DEFAULT NULL,
  `last_active_at` INTEGER DEFAULT 0,
  `status` INTEGER NOT NULL DEFAULT 1,
  `created_at` INTEGER DEFAULT NULL,
  UNIQUE (`status`, `user_id`, `device_id`)
);

CREATE TABLE `verification_code` (
  `id` TEXT NOT NULL PRIMARY KEY,
  `code` TEXT NOT NULL DEFAULT '',
  `validity_at` INTEGER NOT NULL,
  `created_at` INTEGER NOT NULL,
  `attempts` INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE `user_friend` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `from_user_id` INTEGER NOT NULL,
  `to_user_id` INTEGER NOT NULL,
  `status` INTEGER NOT NULL DEFAULT 1,
  `category_id` INTEGER DEFAULT 0,
  `remark` TEXT NOT NULL DEFAULT '',
  `updated_at` INTEGER DEFAULT NULL,
  `created_at` INTEGER NOT NULL,
  `setting` TEXT NULL,
  UNIQUE (`from_user_id`, `to_user_id`)
);
CREATE INDEX `i_user_friend_status_from_cid` ON `user_friend` (`status`, `from_user_id`, `category_id`);
CREATE INDEX `i_user_friend_to` ON `user_friend` (`to_user_id`);

CREATE TABLE `user_friend_category` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `name` TEXT NOT NULL DEFAULT '',
  `owner_user_id` INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX `i_user_friend_category_owner` ON `user_friend_category` (`owner_user_id`);

CREATE TABLE `user_friend_apply` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `from_user_id` INTEGER NOT NULL,
  `to_user_id` INTEGER NOT NULL,
  `msg` TEXT NOT NULL DEFAULT '',
  `status` INTEGER NOT NULL DEFAULT 0,
  `created_at` INTEGER NOT NULL DEFAULT 0,
  `updated_at` INTEGER NOT NULL DEFAULT 0,
  UNIQUE (`from_user_id`, `to_user_id`)
);
CREATE INDEX `i_user_friend_apply_to` ON `user_friend_apply` (`to_user_id`, `status`);

CREATE TABLE `group` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `type` INTEGER DEFAULT 0,
  `join_limit` INTEGER DEFAULT 0,
  `content_limit` INTEGER DEFAULT 2,
  `owner_uid` INTEGER NOT NULL,
  `creater_uid` INTEGER NOT NULL,
  `member_max` INTEGER NOT NULL DEFAULT 50,
  `member_count` INTEGER NOT NULL DEFAULT 1,
  `notification` TEXT NOT NULL DEFAULT '',
  `introduction` TEXT NOT NULL DEFAULT '',
  `avatar` TEXT NOT NULL DEFAULT '',
  `groupname` TEXT NOT NULL DEFAULT '',
  `status` INTEGER NOT NULL DEFAULT 1,
  `updated_at` INTEGER NOT NULL DEFAULT 0,
  `created_at` INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE `group_member` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `group_id` INTEGER NOT NULL,
  `user_id` INTEGER NOT NULL,
  `alias` TEXT NOT NULL DEFAULT '',
  `description` TEXT DEFAULT '',
  `role` INTEGER NOT NULL DEFAULT 0,
  `status` INTEGER NOT NULL DEFAULT 0,
  `updated_at` INTEGER NOT NULL DEFAULT 0,
  `created_at` INTEGER NOT NULL DEFAULT 0,
  UNIQUE (`group_id`, `user_id`)
);
CREATE INDEX `i_group_member_user` ON `group_member` (`user_id`, `status`);

CREATE TABLE `group_member_log` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `type` INTEGER DEFAULT 0,
  `group_member_id` INTEGER NOT NULL,
  `group_id` INTEGER NOT NULL,
  `user_id` INTEGER NOT NULL,
  `option_uid` INTEGER NOT NULL DEFAULT 0,
  `remark` TEXT DEFAULT '',
  `created_at` INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE `msg_c2c` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `from_id` INTEGER NOT NULL,
  `to_id` INTEGER NOT NULL,
  `created_at` INTEGER NOT NULL DEFAULT 0,
  `server_ts` INTEGER NOT NULL DEFAULT 0,
  `msg_id` TEXT NOT NULL UNIQUE,
  `payload` TEXT NOT NULL,
  `status` INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX `i_msg_c2c_to_status_id` ON `msg_c2c` (`to_id`, `status`, `id`);

CREATE TABLE `msg_c2g` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `from_id` INTEGER NOT NULL,
  `to_groupid` INTEGER NOT NULL,
  `created_at` INTEGER NOT NULL DEFAULT 0,
  `msg_id` TEXT NOT NULL UNIQUE,
  `payload` TEXT NOT NULL,
  `server_ts` INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE `msg_c2g_timeline` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT,
  `to_groupid` INTEGER NOT NULL,
  `to_id` INTEGER NOT NULL,
  `created_at` INTEGER NOT NULL DEFAULT 0,
  `msg_id` TEXT NOT NULL,
  UNIQUE (`msg_id`, `to_id`)
);
CREATE INDEX `i_msg_c2g_timeline_to_id` ON `msg_c2g_timeline` (`to_id`, `id`);
