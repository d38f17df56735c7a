/** Sign-in page. */

import { credentialsForm } from "../credentials.js";

credentialsForm(document.getElementById("signin-form"), "/api/users/signin");
