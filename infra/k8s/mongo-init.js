// Run once by the mongo image, as the root user, when a service's MongoDB volume is first
// initialised (/docker-entrypoint-initdb.d): the service's own user, allowed to read and write
// its own database and nothing else. The values come from <service>-mongo-credentials.
const database = process.env.GITTIX_MONGO_DATABASE;
db.getSiblingDB(database).createUser({
  user: process.env.GITTIX_MONGO_USERNAME,
  pwd: process.env.GITTIX_MONGO_PASSWORD,
  roles: [{ role: "readWrite", db: database }],
});
