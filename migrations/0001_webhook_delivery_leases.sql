ALTER TABLE `webhook_deliveries` ADD `lease_until` text;--> statement-breakpoint
ALTER TABLE `webhook_deliveries` ADD `manual_retry` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `webhook_endpoints` ADD `failing_since` text;