ALTER TABLE `customers` ADD `timezone` text;--> statement-breakpoint
ALTER TABLE `projects` ADD `calling_hours` text;