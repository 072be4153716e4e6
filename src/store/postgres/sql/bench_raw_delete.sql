-- porter bench's baseline only: removes its own single-insert jobs (a queue nobody works).
DELETE FROM porter_jobs WHERE queue = $1
