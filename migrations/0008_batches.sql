CREATE TABLE `batches` (
	`id` text PRIMARY KEY NOT NULL,
	`project_id` text NOT NULL,
	`total` integer NOT NULL,
	`accepted` integer NOT NULL,
	`rejected` integer NOT NULL,
	`completed_at` text,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	FOREIGN KEY (`project_id`) REFERENCES `projects`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `batches_project_idx` ON `batches` (`project_id`,`id`);--> statement-breakpoint
ALTER TABLE `notifications` ADD `batch_id` text;--> statement-breakpoint
CREATE INDEX `notifications_batch_idx` ON `notifications` (`batch_id`,`status`);