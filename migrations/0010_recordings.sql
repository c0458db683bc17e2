ALTER TABLE `notifications` ADD `recording_key` text;--> statement-breakpoint
ALTER TABLE `notifications` ADD `recording_expires_at` text;--> statement-breakpoint
CREATE INDEX `notifications_recording_expiry_idx` ON `notifications` (`recording_expires_at`) WHERE recording_expires_at IS NOT NULL;