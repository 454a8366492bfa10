"""TiKVClusters kept from tidb-operator's TidbClusters: the passes that write them (I/O)."""
