CREATE TABLE `blocked_numbers` (
	`id` text PRIMARY KEY NOT NULL,
	`project_id` text NOT NULL,
	`phone` text NOT NULL,
	`reason` text,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	FOREIGN KEY (`project_id`) REFERENCES `projects`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `blocked_numbers_project_phone_idx` ON `blocked_numbers` (`project_id`,`phone`);--> statement-breakpoint
CREATE INDEX `blocked_numbers_project_idx` ON `blocked_numbers` (`project_id`,`id`);--> statement-breakpoint
ALTER TABLE `agents` ADD `transfer_to` text;--> statement-breakpoint
ALTER TABLE `agents` ADD `record` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `agents` ADD `recording_disclosure` text;--> statement-breakpoint
ALTER TABLE `customers` ADD `consent` text;--> statement-breakpoint
ALTER TABLE `notifications` ADD `opted_out` integer DEFAULT false NOT NULL;