ALTER TABLE `agents` ADD `engine` text DEFAULT 'openai-realtime' NOT NULL;--> statement-breakpoint
ALTER TABLE `notifications` ADD `engine` text DEFAULT 'openai-realtime' NOT NULL;--> statement-breakpoint
ALTER TABLE `projects` ADD `default_engine` text DEFAULT 'openai-realtime' NOT NULL;