-- patientflow on Synapse serverless SQL: database, credential and external data source for the lake.
-- Run once per workspace (Synapse Studio or sqlcmd against <workspace>-ondemand.sql.azuresynapse.net).
-- Replace <account> and <container>/<prefix> with the lake's (PATIENTFLOW_LAKE = abfss://<container>@<account>.dfs.core.windows.net/<prefix>).

-- UTF-8 collation: Delta/Parquet strings are UTF-8; a non-UTF-8 collation garbles names and breaks
-- predicate pushdown on string columns.
CREATE DATABASE patientflow COLLATE Latin1_General_100_BIN2_UTF8;
GO
USE patientflow;
GO

-- The workspace managed identity (or the caller's Entra identity) needs Storage Blob Data Reader on the
-- lake account. With a managed identity, create a credential; with Entra pass-through, skip the next two
-- statements and the CREDENTIAL clause.
CREATE MASTER KEY ENCRYPTION BY PASSWORD = '<a strong password>';
GO
CREATE DATABASE SCOPED CREDENTIAL WorkspaceIdentity WITH IDENTITY = 'Managed Identity';
GO

-- Points at the lake's Gold folder: every view's BULK path is a table folder below it (the folder that
-- contains _delta_log).
CREATE EXTERNAL DATA SOURCE patientflow_gold
    WITH (LOCATION = 'https://<account>.dfs.core.windows.net/<container>/<prefix>/gold/',
          CREDENTIAL = WorkspaceIdentity);
GO

CREATE SCHEMA gold;
GO
