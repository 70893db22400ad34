DROP TABLE notification_jobs;
