ALTER TABLE `notifications` ADD `carrier_call_sid` text;--> statement-breakpoint
ALTER TABLE `notifications` ADD `reconcile_at` text;--> statement-breakpoint
CREATE INDEX `notifications_reconcile_idx` ON `notifications` (`status`,`reconcile_at`);--> statement-breakpoint
-- Calls already in progress when this runs are checked by the next reconciler run.
UPDATE `notifications` SET `reconcile_at` = `created_at` WHERE `status` = 'in_progress';
