ALTER TABLE `agents` ADD `retry` text;--> statement-breakpoint
ALTER TABLE `notifications` ADD `retry` text;--> statement-breakpoint
ALTER TABLE `notifications` ADD `attempts` text DEFAULT '[]' NOT NULL;