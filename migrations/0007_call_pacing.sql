ALTER TABLE `projects` ADD `max_concurrent_calls` integer DEFAULT 10 NOT NULL;--> statement-breakpoint
CREATE INDEX `notifications_project_status_idx` ON `notifications` (`project_id`,`status`);