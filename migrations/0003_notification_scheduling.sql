ALTER TABLE `notifications` ADD `scheduled_for` text;--> statement-breakpoint
ALTER TABLE `notifications` ADD `queued_reason` text;